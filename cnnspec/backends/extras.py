"""The optional packages each backend needs, and one message naming the missing ones with the
extra that brings them, instead of a traceback from deep inside a backend.

`cnnspec` alone (lark, pydantic, click) checks, summarises and emits source; the backends that
build or run models need the extras of `pyproject.toml` (a test holds `EXTRAS` equal to them).
"""

from __future__ import annotations

import importlib

#: each extra and the packages it brings that cnnspec imports (in pyproject.toml's order)
EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "numpy"),
    "onnx": ("onnx", "onnxruntime", "numpy"),
    "all": ("torch", "numpy", "onnx", "onnxruntime", "safetensors"),
}

#: what each entry point imports; the weights formats add their readers' packages
NEEDS: dict[str, tuple[str, ...]] = {
    "to_torch()": ("torch",),
    "to_onnx()": ("numpy", "onnx"),
    "cnnspec export": ("numpy", "onnx"),
    # int8's quantiser is onnxruntime's
    "cnnspec export --int8": ("numpy", "onnx", "onnxruntime"),
    "to_onnx(precision='int8')": ("numpy", "onnx", "onnxruntime"),
    "cnnspec run": ("numpy", "onnx", "onnxruntime"),
    "cnnspec verify": ("numpy", "torch", "onnx", "onnxruntime"),
}
WEIGHT_READERS = {".safetensors": ("safetensors",), ".pt": ("torch",), ".pth": ("torch",)}


class MissingExtraError(ImportError):
    """Packages an entry point needs are not installed; the message names them and the extra
    that installs them, on one line."""


def missing_packages(packages) -> list[str]:
    """The packages of `packages` that cannot be imported."""
    missing = []
    for package in dict.fromkeys(packages):
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    return missing


def extras_for(missing: list[str], needed=()) -> list[str]:
    """The fewest extras that bring every missing package: greedily the one bringing most of what
    is still missing, on a tie the one bringing more of what the entry point `needed`.

    >>> extras_for(["onnx", "numpy"]), extras_for(["torch", "onnxruntime"]), extras_for(["safetensors"])
    (['onnx'], ['torch', 'onnx'], ['all'])
    >>> extras_for(["numpy"], needed=NEEDS["cnnspec run"]), extras_for(["numpy"], needed=["torch", "numpy"])
    (['onnx'], ['torch'])
    """
    chosen: list[str] = []
    left = set(missing)
    narrow = {extra: set(packages) for extra, packages in EXTRAS.items() if extra != "all"}
    while left and narrow:
        best = max(narrow, key=lambda e: (len(narrow[e] & left), len(narrow[e] & set(needed))))
        if not narrow[best] & left:
            break
        chosen.append(best)
        left -= narrow.pop(best)
    # a package only `all` brings (safetensors): then `all`, which brings the rest too
    return ["all"] if left else chosen


def require(entry: str, extra_packages=()) -> None:
    """Raise `MissingExtraError` unless every package `entry` needs (and `extra_packages`) imports.

    The message: `to_onnx()` needs onnx and numpy, which are not installed: pip install "cnnspec[onnx]"
    """
    missing = missing_packages([*NEEDS[entry], *extra_packages])
    if not missing:
        return
    names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
    verb = "is" if len(missing) == 1 else "are"
    raise MissingExtraError(f"`{entry}` needs {names}, which {verb} not installed: "
                            f"pip install \"cnnspec[{','.join(extras_for(missing, NEEDS[entry]))}]\"")


def weight_readers(path) -> tuple[str, ...]:
    """The packages reading a weights file needs, by its suffix (`.npz` needs numpy alone)."""
    from pathlib import Path

    return WEIGHT_READERS.get(Path(path).suffix.lower(), ()) if path is not None else ()
