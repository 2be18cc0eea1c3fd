"""Dense layers: `linear`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cnnspec.codes import Code
from cnnspec.layers.base import (
    Everything,
    LayerError,
    LayerKind,
    Params,
    Shape,
    Taps,
    Tensor,
    Traits,
    describe_shape,
    kernel_state,
    register,
)
from cnnspec.layers.domains import BOOL, Ints, values


class LinearParams(Params):
    kind: Literal["linear"] = "linear"
    out: Annotated[int, Field(ge=1)]
    bias: bool = True
    #: over the last dimension at every other position, as nn.Linear does (after `channels_last`)
    last: bool = False


@register
class Linear(LayerKind):
    name = "linear"
    family = "dense"
    Params = LinearParams
    positional = ("out",)
    flags = {"last": ("last", True)}
    summary = "fully connected layer on a flat vector (`last`: over the last dimension of any tensor)"
    traits = Traits(bias=True)
    field = "reads"
    pytorch_names = {"dense": None, "fullyconnected": None}
    # a map needs `last`; a flat vector is left to the plain form
    ranges = {"out": Ints(1, 8), "bias": BOOL, "last": values(True, chance=1.0, when=lambda w: w.rank > 0)}
    # on a map, `last` is what makes it apply; a Linear acts on the last dimension either way
    shape_only = ("last",)

    def brief(self, p: LinearParams, rank: int) -> list[str]:
        return [str(p.out)]

    def feature_reads(self, p: LinearParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return {len(shape) - 1: Everything()}

    def infer_shape(self, p: LinearParams, shape: Shape) -> Shape:
        if p.last:
            return (*shape[:-1], p.out)
        if len(shape) != 1:
            raise LayerError(Code.WRONG_INPUT_RANK, f"`linear` needs a flat input, got a feature map {describe_shape(shape)}",
                             help="add `flatten` before it, or `avgpool global` then `flatten`; "
                                  "`linear n last` acts on the last dimension (after `channels_last`)")
        return (p.out,)

    def state(self, p: LinearParams, shape: Shape) -> tuple[Tensor, ...]:
        """in * out weights + (out if bias), `in` being the last dimension."""
        return kernel_state((p.out, shape[-1]), p.out, p.bias)

    def count_macs(self, p: LinearParams, shape: Shape, out: Shape) -> int:
        """in * out at every position of the other dimensions."""
        positions = 1
        for d in shape[:-1]:
            positions *= d
        return shape[-1] * p.out * positions
