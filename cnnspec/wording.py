"""How cnnspec words what it prints: large counts in short (`human`) and the name that a
misspelt one most likely meant (`closest`, for every "did you mean" in diagnostics and errors)."""

from __future__ import annotations


def human(value: float) -> str:
    """1234567 -> 1.23M.

    >>> human(25557032), human(4089184256), human(950)
    ('25.56M', '4.09G', '950')
    """
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:g}"


def counted(count: int, noun: str) -> str:
    """A count with its noun, one spelt out: `one name`, `3 names`.

    >>> counted(1, "name"), counted(3, "name"), counted(0, "value")
    ('one name', '3 names', '0 values')
    """
    return f"one {noun}" if count == 1 else f"{count:,} {noun}s"


def closest(name: str, candidates) -> str | None:
    """The candidate most like `name`, if one is alike enough (difflib's ratio of 0.6 or more).

    >>> closest("reul", ["relu", "elu", "gelu"]), closest("xyz", ["relu"])
    ('relu', None)
    """
    import difflib  # here: only a mistake needs it, and a check that finds none starts sooner

    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return match[0] if match else None
