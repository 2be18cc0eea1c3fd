"""cnnspec: a declarative compiler for convolutional network architectures.

    >>> import cnnspec
    >>> net = cnnspec.loads("input x: 1x28x28\\nconv 6 5x5 pad=2\\nflatten\\nlinear 10")
    >>> net.params, net.macs, net.output_shape
    (47206, 164640, (10,))

Importing the package loads nothing but its version: its names load when first used (the
checker with lark and pydantic; torch, onnx and numpy only in the backends that need them), so
the command decides how its process runs before anything heavy loads (`cnnspec.console`).
"""

from cnnspec.version import __version__

__all__ = ["Diagnostic", "Network", "SpecError", "__version__", "check", "load", "loads"]
#: the façade's names, imported when first used: a module deep in the package (a backend, the
#: loader) then loads without the façade above it, as the import graph runs one way
_FACADE = ("Network", "check", "load", "loads")
_DIAGNOSTICS = ("Diagnostic", "SpecError")


def __getattr__(name: str):
    if name in _FACADE:
        from cnnspec import network

        return getattr(network, name)
    if name in _DIAGNOSTICS:
        from cnnspec import diagnostics

        return getattr(diagnostics, name)
    raise AttributeError(f"module 'cnnspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FACADE) | set(_DIAGNOSTICS))
