"""Normalisation: `bn`, `instancenorm`, `ln` (over channels), `groupnorm` and `lrn`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cnnspec.codes import Code
from cnnspec.layers.base import (
    Everything,
    Grouped,
    LayerError,
    LayerKind,
    Params,
    Shape,
    Sliding,
    Taps,
    Tensor,
    Traits,
    affine_state,
    describe_shape,
    need_spatial,
    register,
    tracked_statistics,
)
from cnnspec.layers.domains import BOOL, EPS, Divisors, Ints, values
from cnnspec.layers.formulas import product

PositiveFloat = Annotated[float, Field(gt=0)]


class BatchNormParams(Params):
    kind: Literal["bn"] = "bn"
    eps: PositiveFloat = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = True


@register
class BatchNorm(LayerKind):
    name = "bn"
    family = "normalisation"
    Params = BatchNormParams
    summary = "batch normalisation over channels (BatchNorm1d/2d/3d)"
    pytorch_names = {"batchnorm": None, "batchnormalization": None}
    noun = "batch norm"
    traits = Traits(pointwise=True, centres=True, running_statistics=True)
    field = "pointwise"
    ranges = {"eps": EPS, "momentum": values(0.1, 0.01, 0.5), "affine": BOOL}
    buffers_note = "BatchNorm running statistics"
    training_only = ("momentum",)

    def state(self, p: BatchNormParams, shape: Shape) -> tuple[Tensor, ...]:
        """2C learnable (scale and shift) when affine; 2C running statistics (mean and variance)."""
        return affine_state(shape[0], p.affine) + tracked_statistics(shape[0])


class InstanceNormParams(Params):
    kind: Literal["instancenorm"] = "instancenorm"
    eps: PositiveFloat = 1e-5
    momentum: Annotated[float, Field(ge=0, le=1)] = 0.1
    affine: bool = False
    track_running_stats: bool = False


@register
class InstanceNorm(LayerKind):
    name = "instancenorm"
    family = "normalisation"
    Params = InstanceNormParams
    summary = ("instance normalisation: each channel of each sample over its positions (InstanceNorm1d/2d/3d); "
               "with `track_running_stats`, by running statistics at inference")
    noun = "instance norm"
    pytorch_names = {"instancenormalization": None}
    traits = Traits(pointwise=True, centres=True)
    ranges = {"eps": EPS, "momentum": values(0.1, 0.01, 0.5), "affine": BOOL, "track_running_stats": BOOL}
    buffers_note = "InstanceNorm running statistics"
    training_only = ("momentum",)
    field = "reads"

    def feature_reads(self, p: InstanceNormParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        """In eval, by the running statistics when tracked (each position alone), else by its
        channel's statistics over every position."""
        return {} if p.track_running_stats else {axis: Everything() for axis in range(1, len(shape))}

    def infer_shape(self, p: InstanceNormParams, shape: Shape) -> Shape:
        need_spatial(self.name, shape)
        if product(shape[1:]) == 1:
            # PyTorch refuses to normalise a single value by its own statistics
            raise LayerError(Code.WRONG_INPUT_RANK, f"`instancenorm` needs more than one position per channel, "
                                                    f"got {describe_shape(shape)}",
                             help="normalise over the channels with `ln`, or over the batch with `bn`")
        return shape

    def state(self, p: InstanceNormParams, shape: Shape) -> tuple[Tensor, ...]:
        """2C learnable (scale and shift) when affine; 2C running statistics when tracked."""
        return affine_state(shape[0], p.affine) + (tracked_statistics(shape[0]) if p.track_running_stats else ())


class LayerNormParams(Params):
    kind: Literal["ln"] = "ln"
    eps: PositiveFloat = 1e-5
    affine: bool = True
    #: over the last dimension (nn.LayerNorm after `channels_last`) rather than the channels
    last: bool = False


@register
class LayerNorm(LayerKind):
    name = "ln"
    family = "normalisation"
    Params = LayerNormParams
    flags = {"last": ("last", True)}
    summary = "layer normalisation over the channels at each position (`last`: over the last dimension)"
    pytorch_names = {"layernorm": None}
    traits = Traits(pointwise=True)
    ranges = {"eps": EPS, "affine": BOOL, "last": BOOL}
    field = "reads"

    def feature_reads(self, p: LayerNormParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return {len(shape) - 1 if p.last else 0: Everything()}

    def state(self, p: LayerNormParams, shape: Shape) -> tuple[Tensor, ...]:
        return affine_state(shape[-1] if p.last else shape[0], p.affine)


class GroupNormParams(Params):
    kind: Literal["groupnorm"] = "groupnorm"
    groups: Annotated[int, Field(ge=1)]
    eps: PositiveFloat = 1e-5
    affine: bool = True


@register
class GroupNorm(LayerKind):
    name = "groupnorm"
    family = "normalisation"
    Params = GroupNormParams
    positional = ("groups",)
    summary = "group normalisation"
    traits = Traits(pointwise=True)
    ranges = {"groups": Divisors(), "eps": EPS, "affine": BOOL}
    field = "reads"

    def feature_reads(self, p: GroupNormParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        """Each group's statistics are taken over its channels and every position."""
        per = shape[0] // p.groups
        return {0: Grouped(per, per) if p.groups > 1 else Everything(), **{axis: Everything() for axis in range(1, len(shape))}}

    def infer_shape(self, p: GroupNormParams, shape: Shape) -> Shape:
        if shape[0] % p.groups:
            raise LayerError(Code.GROUPS_MISMATCH, f"groups={p.groups} does not divide the {shape[0]} channels", arg="groups")
        return shape

    def state(self, p: GroupNormParams, shape: Shape) -> tuple[Tensor, ...]:
        return affine_state(shape[0], p.affine)

    def brief(self, p: GroupNormParams, rank: int) -> list[str]:
        return [str(p.groups)]


class LrnParams(Params):
    kind: Literal["lrn"] = "lrn"
    size: Annotated[int, Field(ge=1)] = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@register
class LocalResponseNorm(LayerKind):
    name = "lrn"
    family = "normalisation"
    Params = LrnParams
    positional = ("size",)
    summary = "local response normalisation across channels (AlexNet era)"
    pytorch_names = {"localresponsenorm": None}
    traits = Traits(pointwise=True)
    ranges = {"size": Ints(1, 5), "alpha": values(1e-4, 0.01), "beta": values(0.75, 0.5), "k": values(1.0, 2.0)}
    field = "reads"

    def feature_reads(self, p: LrnParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        """`size` neighbouring channels, centred (PyTorch pads size // 2 before)."""
        return {0: Sliding(p.size, 1, p.size // 2)}

    def infer_shape(self, p: LrnParams, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise LayerError(Code.WRONG_INPUT_RANK, f"`lrn` needs a feature map, got a flat {describe_shape(shape)}")
        return shape
