"""Dense layers: `linear`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cnnspec.layers.base import LayerError, LayerKind, Params, Shape, describe_shape, register


class LinearParams(Params):
    kind: Literal["linear"] = "linear"
    out: Annotated[int, Field(ge=1)]
    bias: bool = True


@register
class Linear(LayerKind):
    name = "linear"
    family = "dense"
    Params = LinearParams
    positional = ("out",)
    summary = "fully connected layer on a flat vector"
    #: every output sees every position of the map that was flattened
    mixes_positions = True

    def infer_shape(self, p: LinearParams, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise LayerError("E214", f"`linear` needs a flat input, got a feature map {describe_shape(shape)}",
                             help="add `flatten` before it, or `avgpool global` then `flatten`")
        return (p.out,)

    def count_params(self, p: LinearParams, shape: Shape) -> int:
        """in * out + (out if bias)."""
        return shape[0] * p.out + (p.out if p.bias else 0)

    def count_macs(self, p: LinearParams, shape: Shape, out: Shape) -> int:
        """in * out."""
        return shape[0] * p.out
