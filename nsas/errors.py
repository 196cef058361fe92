"""The one exception type users see.

Every error caused by user input (a malformed architecture string, a missing
data set, a corrupt checkpoint, a NaN loss) is raised as :class:`NsasError`
with a message that names the offending token, file or step. The CLI prints
it as a single line and exits with status 2; it never shows a traceback.
"""

import itertools


class NsasError(Exception):
    """An error caused by input or state the user can fix."""


class ArchitectureError(NsasError):
    """A malformed or invalid architecture string or JSON value."""


class DataError(NsasError):
    """A data set that is missing, incomplete or unreadable."""


class CheckpointError(NsasError):
    """A checkpoint that is truncated, corrupt, foreign or unsafe."""


class TrainingError(NsasError):
    """Training cannot continue (for example a NaN or infinite loss)."""


def brief(value: object, limit: int = 80) -> str:
    """A ``repr`` of ``value`` for an error message, at most about ``limit`` characters.

    Nested containers are walked only as far as the text needs, so a value that is huge (a 10 MB string) or
    exponentially large through shared references (YAML's "billion laughs") costs no more than a small one.
    """
    parts: list[str] = []
    size = 0
    stack: list[object] = [value]
    closers = {list: "]", tuple: ")", dict: "}", set: "}", frozenset: "}"}
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, _Text):
            text = item.text
        elif isinstance(item, (list, tuple, set, frozenset)):
            text = {list: "[", tuple: "(", set: "{", frozenset: "{"}.get(type(item), "[")
            stack.append(_Text(closers.get(type(item), "]")))
            first = list(itertools.islice(item, limit + 1))  # more elements than characters cannot all show
            for i, element in enumerate(reversed(first)):
                if i:
                    stack.append(_Text(", "))
                stack.append(element)
        elif isinstance(item, dict):
            text = "{"
            stack.append(_Text("}"))
            for i, (k, v) in enumerate(reversed(list(itertools.islice(item.items(), limit + 1)))):
                if i:
                    stack.append(_Text(", "))
                stack.extend((v, _Text(": "), k))
        elif isinstance(item, str) and len(item) > limit:
            text = repr(item[:limit])
        elif isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 4 * limit:
            text = f"<an integer of about {int(item.bit_length() * 0.30103):,} digits>"
        else:
            text = repr(item)
        parts.append(text)
        size += len(text)
    shown = "".join(parts)
    return shown if size <= limit and not stack else shown[:limit] + "..."


class _Text:
    """Literal text in :func:`brief`'s walk (brackets and separators)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def shorten(text: str, limit: int = 200) -> str:
    """``text`` itself when short, else its start and how long it was (what an error line may quote)."""
    return text if len(text) <= limit else f"{text[: max(limit - 30, 10)]}... ({len(text):,} characters)"
