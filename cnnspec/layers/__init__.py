"""The layer registry, one module per family. Importing this package registers every kind."""

from cnnspec.layers import act, conv, dense, norm, pool, shape  # noqa: F401  (registration)
from cnnspec.layers.base import REGISTRY, LayerError, LayerKind, Shape, describe_shape

__all__ = ["REGISTRY", "LayerError", "LayerKind", "Shape", "describe_shape", "usage", "option_names"]


def usage(name: str) -> str:
    """How a kind is written with its positional arguments: `conv <out> <kernel>`."""
    return " ".join([name, *(f"<{p}>" for p in REGISTRY[name].positional)])


def option_names(name: str) -> list[str]:
    """The options a kind takes by `key=value`, as they are written (`lambda_` is `lambda`)."""
    kind = REGISTRY[name]
    return [f.rstrip("_") for f in kind.Params.model_fields if f != "kind" and f not in kind.positional]
