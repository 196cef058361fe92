"""Config plumbing shared by every subcommand.

Precedence: dataclass defaults < ``--config FILE.yaml`` < command-line flags.
Flags are declared with ``default=argparse.SUPPRESS`` (see :func:`add_flag`)
so that only the flags a user actually typed override the YAML file.
Unknown YAML keys and values of the wrong type are errors, not silently
ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nsas.atomic import write_text_atomic
from nsas.errors import NsasError

T = TypeVar("T")


def add_flag(parser: argparse.ArgumentParser, *names: str, **kwargs: Any) -> None:
    """Add a flag whose absence leaves the config value untouched."""
    kwargs.setdefault("default", argparse.SUPPRESS)
    parser.add_argument(*names, **kwargs)


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--config FILE.yaml`` flag every configurable subcommand has."""
    parser.add_argument("--config", metavar="FILE.yaml", default=None,
                        help="YAML file of config keys; flags given on the command line override it")


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
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise NsasError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NsasError(f"config file {path} must hold a mapping of keys to values, not {type(data).__name__} "
                        f"{str(data)[:40]!r}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise NsasError(f"config file {path}: key {bad[0]!r} is not a name (keys are words such as lr)")
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
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(name, value, arg)
            except NsasError:
                continue
        raise NsasError(f"config key {name!r}: {value!r} is not a valid {hint}")
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise NsasError(f"config key {name!r}: expected a mapping of names to values, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise NsasError(f"config key {name!r}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(hint) or (Any,)
        items = [value_ if inner is Any else _check_type(name, value_, inner) for value_ in value]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise NsasError(f"config key {name!r}: expected true/false, got {value!r}")
    if hint in (int, float, str) and (not isinstance(value, hint) or isinstance(value, bool) and hint is not bool):
        raise NsasError(f"config key {name!r}: expected {hint.__name__}, got {value!r}")
    return value


def build_config(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Instantiate dataclass ``cls`` from ``values``, validating keys and types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise NsasError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    checked = {k: _check_type(k, v, hints[k]) for k, v in values.items()}
    try:
        return cls(**checked)
    except (TypeError, ValueError) as err:
        raise NsasError(f"{source}: {err}") from None


def resolve_config(cls: type[T], args: argparse.Namespace, base: dict[str, Any] | None = None) -> T:
    """Defaults < ``base`` < YAML file of ``args.config`` < flags present in ``args``."""
    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        values.update(read_yaml(args.config))
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values.update({k: v for k, v in vars(args).items() if k in names})
    return build_config(cls, values, source=f"config file {args.config}" if getattr(args, "config", None) else "config")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (tuples become lists), ready for YAML."""
    out = {}
    for k, v in dataclasses.asdict(config).items():
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def write_yaml(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as YAML (keys in declaration order), atomically."""
    write_text_atomic(Path(path), yaml.safe_dump(data, sort_keys=False))
