"""Where the grammar and the zoo live, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


def grammar_path() -> Path:
    # A wheel carries the grammar inside the package; a checkout keeps it at the top level.
    return _first_existing(_PACKAGE / "grammars" / "cnnspec.lark",
                           _PACKAGE.parent / "grammars" / "cnnspec.lark")


def zoo_dir() -> Path:
    return _first_existing(_PACKAGE / "zoo", _PACKAGE.parent / "specs")


def docs_dir() -> Path:
    """The lint and error pages: inside the package when installed, `docs/` in a checkout."""
    return _first_existing(_PACKAGE / "docs", _PACKAGE.parent / "docs")
