"""Normalisation: `bn`, `ln` (over channels), `groupnorm` and `lrn`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cnnspec.codes import Code
from cnnspec.layers.base import LayerError, LayerKind, Params, Shape, describe_shape, register

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

    def count_params(self, p: BatchNormParams, shape: Shape) -> int:
        """2C learnable (scale and shift) when affine."""
        return 2 * shape[0] if p.affine else 0

    def count_buffers(self, p: BatchNormParams, shape: Shape) -> int:
        """2C running statistics (mean and variance)."""
        return 2 * shape[0]


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

    def count_params(self, p: LayerNormParams, shape: Shape) -> int:
        return 2 * (shape[-1] if p.last else shape[0]) if p.affine else 0


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

    def infer_shape(self, p: GroupNormParams, shape: Shape) -> Shape:
        if shape[0] % p.groups:
            raise LayerError(Code.GROUPS_MISMATCH, f"groups={p.groups} does not divide the {shape[0]} channels", arg="groups")
        return shape

    def count_params(self, p: GroupNormParams, shape: Shape) -> int:
        return 2 * shape[0] if p.affine else 0


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

    def infer_shape(self, p: LrnParams, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise LayerError(Code.WRONG_INPUT_RANK, f"`lrn` needs a feature map, got a flat {describe_shape(shape)}")
        return shape
