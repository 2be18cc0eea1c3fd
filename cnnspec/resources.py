"""Where the grammar, the docs and the zoo live, installed or in a checkout; a zoo spec by its name."""

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


def zoo_names() -> list[str]:
    return sorted(p.stem for p in zoo_dir().glob("*.cnn"))


def zoo_path(name: str) -> Path:
    """The zoo's spec called `name`: a name from `zoo_names()`, never a path (`../specs/x`,
    `common/resnet`); else `UnknownZooNetwork`."""
    if name not in zoo_names():
        raise UnknownZooNetwork(name)
    return zoo_dir() / f"{name}.cnn"


class UnknownZooNetwork(LookupError):
    """A name that is not a zoo network's; `help` suggests the closest one."""

    def __init__(self, name: str):
        from cnnspec.wording import closest

        super().__init__(f"no zoo network `{name}`")
        self.name = name
        # `zoo:../specs/resnet18` is most likely meant as `resnet18`
        near = closest(name, zoo_names()) or closest(name.replace("\\", "/").rsplit("/", 1)[-1], zoo_names())
        hint = f"did you mean `zoo:{near}`?" if near else "run `cnnspec zoo list` for the names"
        self.help = f"a zoo name is a name, not a path; {hint}" if "/" in name or "\\" in name else hint
