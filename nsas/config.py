"""Config plumbing shared by every subcommand.

The config dataclasses (``SearchConfig``, ``TrainConfig``, ``StudyConfig``)
are the one source of truth for options: each field is declared with
:func:`option`, which records its help text, and :func:`add_config_flags`
turns every field into a command-line flag (key ``batch_size`` -> flag
``--batch-size``; YAML files use the key names, with underscores).

Precedence: dataclass defaults < preset or recipe < ``--config FILE.yaml`` <
command-line flags. Flags default to ``argparse.SUPPRESS`` so that only the
flags a user actually typed override the YAML file. Unknown YAML keys and
values of the wrong type are errors, not silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nsas.atomic import write_text_atomic
from nsas.errors import NsasError, brief, shorten

T = TypeVar("T")
INT_RANGE = (-(2**63), 2**63 - 1)  # every integer option must fit in 64 bits (torch's seeds, tensor sizes)
MAX_YAML_VALUES = 100_000  # values a config may expand to, each alias counted as what it repeats (billion laughs)


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
           parse: Callable[[str], Any] | None = None, metavar: str | None = None) -> Any:
    """A config dataclass field with the metadata its command-line flag is generated from.

    Args:
        default: the default value.
        help: one-line help text of the key and its flag.
        default_factory: instead of ``default``, for mutable defaults.
        choices: allowed values, or a function returning them (read when the parser is built).
        parse: turns the flag's text into the value (instead of the one derived from the type).
        metavar: the flag's value placeholder in ``--help``.
    """
    meta = {"help": help, "choices": choices, "parse": parse, "metavar": metavar}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--config FILE.yaml`` and ``--print-config`` flags every configurable subcommand has."""
    parser.add_argument("--config", metavar="FILE.yaml", default=None,
                        help="YAML file of config keys (the flag names with underscores: batch_size); "
                             "flags given on the command line override it")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as YAML and exit without running")


def flag_name(key: str) -> str:
    """The command-line flag of config key ``key`` (``batch_size`` -> ``--batch-size``)."""
    return "--" + key.replace("_", "-")


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser that also reads ``none`` as None (for keys typed ``X | None``)."""
    def read(text: str) -> Any:
        return None if text.lower() in ("none", "null") else parse(text)
    read.__name__ = getattr(parse, "__name__", "value")
    return read


def _yaml_mapping(text: str) -> dict[str, Any]:
    """A flag value that is a YAML/JSON mapping, e.g. ``'{lr: 0.1, epochs: 3}'``."""
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
        _check_expanded_size(value)
    except (yaml.YAMLError, _DuplicateKey, RecursionError, ValueError, NsasError):
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{key: value}}', got {brief(text, 80)}")
    return value


def _flag_kwargs(hint: Any, meta: Any) -> dict[str, Any]:
    """argparse keyword arguments for a field of type ``hint``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1
    base = args[0] if optional else hint
    origin = typing.get_origin(base)
    kwargs: dict[str, Any] = {}
    if base is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin in (list, tuple) and meta.get("parse") is None:
        (inner, *_) = typing.get_args(base) or (str,)
        kwargs.update(nargs="*", type=inner if inner in (int, float) else str)
    elif base is dict or origin is dict:
        kwargs.update(type=_yaml_mapping, metavar="'{KEY: VALUE, ...}'")
    else:
        parse = meta.get("parse") or (base if base in (int, float, str) else str)
        kwargs["type"] = _optional(parse) if optional else parse
    choices = meta.get("choices")
    if choices is not None:
        kwargs["choices"] = tuple(choices() if callable(choices) else choices)
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    elif base in (int, float) and "choices" not in kwargs:
        kwargs["metavar"] = "N" if base is int else "X"
    return kwargs


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, skip: Iterable[str] = (),
                     default_text: Callable[[str, Any], str | None] | None = None,
                     title: str | None = None) -> None:
    """One flag per field of config dataclass ``cls``, with the help text recorded by :func:`option`.

    Args:
        parser: the subcommand's parser.
        cls: the config dataclass.
        skip: keys whose flags the subcommand declares by hand.
        default_text: ``(key, dataclass default) -> text`` shown as the flag's default
            (None: show nothing); without it the dataclass default is shown.
        title: heading of the flags in ``--help``.
    """
    hints = typing.get_type_hints(cls)
    title = title or "config keys (also YAML keys, written with underscores)"
    groups: dict[type, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        owner = _owner(cls, f.name)  # a config made of option groups gets one --help section per group
        if owner not in groups:
            heading = title if not groups else _group_title(owner)
            groups[owner] = parser.add_argument_group(heading)
        group = groups[owner]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if f.metadata.get("parse") and isinstance(default, list):  # a list typed as one comma-separated value
            default = ",".join(map(str, default))
        shown = default_text(f.name, default) if default_text else f"default: {default_repr(default)}"
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} ({shown})" if shown else help_text
        group.add_argument(flag_name(f.name), dest=f.name, default=argparse.SUPPRESS,
                           help=help_text.replace("%", "%%"), **_flag_kwargs(hints[f.name], f.metadata))


def _owner(cls: type, name: str) -> type:
    """The class of ``cls``'s MRO whose own annotations declare field ``name`` (options groups inherit fields)."""
    for klass in cls.__mro__:
        if name in vars(klass).get("__annotations__", {}):
            return klass
    return cls


def _group_title(klass: type) -> str:
    """A ``--help`` heading from an options class's docstring: its first line up to a colon or full stop."""
    first = (klass.__doc__ or klass.__name__).strip().splitlines()[0]
    return first.split(":")[0].rstrip(".")


def default_repr(value: Any) -> str:
    """A default value as a user would type it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "empty"
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True).strip() if value else "{}"
    return str(value)


def print_config(config: Any) -> None:
    """Print a config dataclass as the YAML a ``--config`` file or run directory holds."""
    print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that gives one key twice (it would keep the last silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base loader reports it
                    continue
                if duplicate:
                    raise _DuplicateKey(str(key), key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def _check_expanded_size(data: Any, limit: int = MAX_YAML_VALUES) -> None:
    """Refuse a loaded YAML value that holds more than ``limit`` values once every alias is expanded.

    PyYAML builds an alias as a reference to the value it names, so 410 bytes of nested aliases load in an
    instant but stand for billions of values, which rendering, copying or saving them would produce. This
    walk counts them with their repeats and stops at ``limit`` (bounded time, whatever the document).
    """
    count, stack = 0, [data]
    while stack:
        item = stack.pop()
        count += 1 + (len(item) // 1000 if isinstance(item, str) else 0)
        if count > limit:
            raise NsasError(f"it expands to more than {limit:,} values (YAML aliases repeat what they point "
                            "to); write the values out")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping with string keys from ``path`` (safe loader); a clear error otherwise.

    An empty file is an empty mapping; a document that is anything else but a
    mapping (``[]``, ``0``, ``false``, a string) is refused, and so are keys
    that are not strings and files that are not UTF-8 text.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise NsasError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise NsasError(f"config file {path} is not UTF-8 text (byte {err.start})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader that refuses duplicate keys)
    except _DuplicateKey as err:
        raise NsasError(f"config file {path}: key {str(err)[:80]!r} is given twice (line {err.line}); "
                        "keep one") from None
    except yaml.YAMLError as err:
        raise NsasError(f"config file {path} is not valid YAML: {str(err).splitlines()[0][:200]}") from None
    except RecursionError:
        raise NsasError(f"config file {path} nests its values too deeply (hundreds of levels)") from None
    except ValueError as err:  # an integer of more digits than Python converts
        raise NsasError(f"config file {path}: {str(err).split(';')[0][:120]}") from None
    try:
        _check_expanded_size(data)
    except NsasError as err:
        raise NsasError(f"config file {path}: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NsasError(f"config file {path} must hold a mapping of keys to values, not {type(data).__name__} "
                        f"{brief(data, 40)}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise NsasError(f"config file {path}: key {brief(bad[0], 60)} is not a name (keys are words such as lr)")
    return data


def check_ranges(config: Any, ranges: dict[str, str]) -> None:
    """Refuse a value outside its interval, written as in mathematics: ``"(0, inf)"``, ``"[0, 1)"``.

    ``None`` (an unset optional key) passes; NaN is outside every interval, and
    infinity outside every interval open at ``inf``.

    Raises:
        NsasError: naming the key, its interval and the value.
    """
    for name, interval in ranges.items():
        value = getattr(config, name)
        if value is None:
            continue
        low, high = (float(v) for v in interval[1:-1].split(","))
        above = value > low if interval[0] == "(" else value >= low
        below = value < high if interval[-1] == ")" else value <= high
        if not (above and below):
            raise NsasError(f"{name} must be in {interval}, got {value}")


def check_device(name: str) -> None:
    """Refuse a device name nsas cannot use (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
    index = name.partition(":")[2]
    if name not in ("auto", "cpu", "cuda") and not (name.startswith("cuda:") and index.isdigit()):
        raise NsasError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Coerce/validate ``value`` against the type ``hint``; raise NsasError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        failures = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(name, value, arg)
            except NsasError as err:
                failures.append(err)
        raise next((e for e in failures if "out of range" in str(e)), None) or \
            NsasError(f"config key {name!r}: {brief(value)} is not a valid {hint}")
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise NsasError(f"config key {name!r}: expected a mapping of names to values, got {brief(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise NsasError(f"config key {name!r}: expected a list, got {brief(value)}")
        (inner, *_) = typing.get_args(hint) or (Any,)
        items = [value_ if inner is Any else _check_type(name, value_, inner) for value_ in value]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise NsasError(f"config key {name!r}: {brief(value)} is out of range for a number") from None
    if hint is bool and not isinstance(value, bool):
        raise NsasError(f"config key {name!r}: expected true/false, got {brief(value)}")
    if hint in (int, float, str) and (not isinstance(value, hint) or isinstance(value, bool) and hint is not bool):
        raise NsasError(f"config key {name!r}: expected {hint.__name__}, got {brief(value)}")
    if hint is int and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise NsasError(f"config key {name!r}: {brief(value, 40)} is out of range (an integer option must fit in "
                        "64 bits: -2**63 to 2**63 - 1)")
    return value


def build_config(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Instantiate dataclass ``cls`` from ``values``, validating keys and types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise NsasError(f"{source}: unknown key(s) {shorten(', '.join(unknown), 200)}; known keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    checked = {k: _check_type(k, v, hints[k]) for k, v in values.items()}
    try:
        return cls(**checked)
    except (TypeError, ValueError) as err:
        raise NsasError(f"{source}: {err}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (tuples become lists), ready for YAML."""
    out = {}
    for k, v in dataclasses.asdict(config).items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def write_yaml(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as YAML (keys in declaration order), atomically."""
    write_text_atomic(Path(path), yaml.safe_dump(data, sort_keys=False))
