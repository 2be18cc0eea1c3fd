"""The layer registry, one module per family. Importing this package registers every kind."""

from cnnspec.layers import act, conv, dense, norm, pool, shape  # noqa: F401  (registration)
from cnnspec.layers.base import REGISTRY, LayerError, LayerKind, Shape, describe_shape

__all__ = ["REGISTRY", "LayerError", "LayerKind", "Shape", "describe_shape"]
