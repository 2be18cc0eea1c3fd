"""The public entry points' arguments, checked at the call.

Misuse of the Python API (bytes or `None` as a spec's text, `input="3x32x32"`, a dict as
`limits`) is a `TypeError` or `ValueError` that names the function, the argument and what it
takes, raised before any work starts, rather than an `AttributeError` from deep inside.
Problems with what a spec says stay diagnostics (`SpecError`).
"""

from __future__ import annotations

import operator
import os

#: the ranks an input may have: C, CxL, CxHxW, CxDxHxW
INPUT_RANKS = range(1, 5)


def _kind(value) -> str:
    return "None" if value is None else type(value).__name__


def text_argument(function: str, name: str, value) -> str:
    """A spec's text: `str` only (bytes are to be decoded by the caller, who knows the encoding)."""
    if isinstance(value, str):
        return value
    hint = "; decode it first, such as `data.decode(\"utf-8\")`" if isinstance(value, (bytes, bytearray)) else ""
    raise TypeError(f"{function}() argument '{name}' must be the spec's text as str, not {_kind(value)}{hint}")


def path_argument(function: str, name: str, value, optional: bool = False) -> str | None:
    """A file name: `str` or `os.PathLike` of a `str` (a `zoo:NAME` is a `str`), as a `str`."""
    if value is None and optional:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str):
            return text
    what = "str, os.PathLike or None" if optional else "str or os.PathLike"
    raise TypeError(f"{function}() argument '{name}' must be {what}, not {_kind(value)}")


def texts_argument(function: str, value) -> dict[str, str] | None:
    """`texts=`: None, or a mapping of file names (`str` or `os.PathLike`) to their text (`str`)."""
    if value is None:
        return None
    if not hasattr(value, "items"):
        raise TypeError(f"{function}() argument 'texts' must be a mapping of paths to text, not {_kind(value)}")
    return {path_argument(function, "texts", name): text_argument(function, f"texts[{name!r}]", text)
            for name, text in value.items()}


def input_argument(function: str, value) -> tuple[int, ...] | dict | None:
    """`input=`: None, 1 to 4 integer sizes (C, then the spatial sizes) of the first input, as a
    tuple, or a mapping of input names (`None` for the first) to such sizes, as a dict. Sizes out
    of range are the spec's E103, as they are for `--input`; a name the spec does not declare is
    its E143."""
    if value is None:
        return None
    if hasattr(value, "items"):
        for name in value:
            if name is not None and not isinstance(name, str) or value[name] is None:
                raise TypeError(f"{function}() argument 'input' must map input names (str) to sizes, "
                                f"not {_kind(name)} to {_kind(value[name])}")
        return {name: input_argument(function, sizes) for name, sizes in value.items()}
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{function}() argument 'input' must be a tuple of ints such as (3, 224, 224), "
                        f"not {_kind(value)}")
    sizes = tuple(value)
    for size in sizes:
        if isinstance(size, bool) or not hasattr(size, "__index__"):
            raise TypeError(f"{function}() argument 'input' must hold ints, not {_kind(size)}")
    if len(sizes) not in INPUT_RANKS:
        raise ValueError(f"{function}() argument 'input' must hold 1 to 4 sizes (C, CxL, CxHxW or CxDxHxW), "
                         f"not {len(sizes)}")
    return tuple(operator.index(size) for size in sizes)


def instance_argument(function: str, name: str, value, kind: type):
    """An optional argument that must be an instance of `kind` (`Limits`, `Config`)."""
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{function}() argument '{name}' must be a {kind.__module__}.{kind.__name__} or None, "
                        f"not {_kind(value)}")
    return value


def check_arguments(function: str, input, limits, config) -> tuple[int, ...] | dict | None:
    """The options every entry point takes (`input`, `limits`, `config`); `input` as a tuple or a dict."""
    from cnnspec.analysis.limits import Limits
    from cnnspec.config import Config

    instance_argument(function, "limits", limits, Limits)
    instance_argument(function, "config", config, Config)
    return input_argument(function, input)
