"""Shape layers: `flatten`, `reshape`, `channel_shuffle`, `identity`."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from cnnspec.codes import Code
from cnnspec.layers.base import (
    LayerError,
    LayerKind,
    Params,
    Shape,
    Shuffled,
    Sliding,
    Taps,
    Traits,
    describe_shape,
    dims_text,
    register,
)
from cnnspec.layers.domains import Choice, Divisors, Ints
from cnnspec.layers.formulas import product


class FlattenParams(Params):
    kind: Literal["flatten"] = "flatten"


@register
class Flatten(LayerKind):
    name = "flatten"
    family = "shape"
    Params = FlattenParams
    summary = "C x H x W -> (C*H*W), the batch dimension kept"
    field = "reshape"

    def infer_shape(self, p: FlattenParams, shape: Shape) -> Shape:
        return (product(shape),)


class ReshapeParams(Params):
    kind: Literal["reshape"] = "reshape"
    shape: Union[Annotated[int, Field(ge=-1)], tuple[Annotated[int, Field(ge=-1)], ...]]


@register
class Reshape(LayerKind):
    name = "reshape"
    family = "shape"
    Params = ReshapeParams
    positional = ("shape",)
    summary = "reshape each sample; one dimension may be -1"

    def brief(self, p: ReshapeParams, rank: int) -> list[str]:
        return [dims_text(p.shape)]
    field = "reshape"
    ranges = {"shape": Choice(lambda w: (product(w.shape), (w.channels, product(w.shape) // w.channels), -1,
                                         (w.channels, -1), (1, product(w.shape))))}

    def infer_shape(self, p: ReshapeParams, shape: Shape) -> Shape:
        target = p.shape if isinstance(p.shape, tuple) else (p.shape,)
        total = product(shape)
        if target.count(-1) > 1:
            raise LayerError(Code.RESHAPE_MISMATCH, "`reshape` may leave at most one dimension as -1", arg="shape")
        if 0 in target:
            raise LayerError(Code.RESHAPE_MISMATCH, "`reshape` dimensions must be positive", arg="shape")
        known = product(d for d in target if d != -1)
        if -1 in target:
            if total % known:
                raise LayerError(Code.RESHAPE_MISMATCH, f"cannot reshape {describe_shape(shape)} ({total:,} elements) into "
                                         f"{'x'.join(map(str, target))}", arg="shape")
            target = tuple(total // known if d == -1 else d for d in target)
        if product(target) != total:
            raise LayerError(Code.RESHAPE_MISMATCH, f"`reshape` from {describe_shape(shape)} ({total:,} elements) to "
                                     f"{describe_shape(target)} ({product(target):,} elements)", arg="shape",
                             help=f"the target must hold {total:,} elements; one dimension may be -1")
        return tuple(target)


class ChannelShuffleParams(Params):
    kind: Literal["channel_shuffle"] = "channel_shuffle"
    groups: Annotated[int, Field(ge=1)]


@register
class ChannelShuffle(LayerKind):
    name = "channel_shuffle"
    family = "shape"
    Params = ChannelShuffleParams
    positional = ("groups",)
    summary = "interleave the channels of `groups` groups (ShuffleNet)"

    def brief(self, p: ChannelShuffleParams, rank: int) -> list[str]:
        return [str(p.groups)]
    ranges = {"groups": Divisors()}
    field = "reads"

    def feature_reads(self, p: ChannelShuffleParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return {0: Shuffled(p.groups, shape[0])} if 1 < p.groups < shape[0] else {}

    def infer_shape(self, p: ChannelShuffleParams, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise LayerError(Code.WRONG_INPUT_RANK, f"`channel_shuffle` needs a feature map, got a flat {describe_shape(shape)}")
        if shape[0] % p.groups:
            raise LayerError(Code.GROUPS_MISMATCH, f"groups={p.groups} does not divide the {shape[0]} channels", arg="groups")
        return shape


class IdentityParams(Params):
    kind: Literal["identity"] = "identity"


@register
class Identity(LayerKind):
    name = "identity"
    family = "shape"
    Params = IdentityParams
    summary = "passes its input through unchanged"
    traits = Traits(pointwise=True)
    field = "pointwise"


class ChunkParams(Params):
    kind: Literal["chunk"] = "chunk"
    chunks: Annotated[int, Field(ge=1)]
    index: Annotated[int, Field(ge=0)]


@register
class Chunk(LayerKind):
    name = "chunk"
    family = "shape"
    Params = ChunkParams
    positional = ("chunks", "index")
    summary = "one of `chunks` equal slices of the channels, as torch.chunk (ShuffleNet's channel split)"

    def brief(self, p: ChunkParams, rank: int) -> list[str]:
        return [str(p.chunks), str(p.index)]
    ranges = {"chunks": Divisors(), "index": Ints(0, lambda w: w.get("chunks") - 1, when=lambda w: "chunks" in w.fields)}
    field = "reads"

    def feature_reads(self, p: ChunkParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        """Output channel `o` is input channel `index * size + o`."""
        return {0: Sliding(1, 1, -p.index * out[0])}

    def infer_shape(self, p: ChunkParams, shape: Shape) -> Shape:
        if p.index >= p.chunks:
            raise LayerError(Code.INVALID_VALUE, f"chunk index {p.index} is out of range for {p.chunks} chunks", arg="index",
                             help=f"chunks are numbered from 0 to {p.chunks - 1}")
        if shape[0] % p.chunks:
            raise LayerError(Code.GROUPS_MISMATCH, f"{p.chunks} chunks do not divide the {shape[0]} channels", arg="chunks")
        return (shape[0] // p.chunks, *shape[1:])


class ChannelsLastParams(Params):
    kind: Literal["channels_last"] = "channels_last"


@register
class ChannelsLast(LayerKind):
    name = "channels_last"
    family = "shape"
    Params = ChannelsLastParams
    summary = "C x H x W -> H x W x C: channels moved last, for `linear last` and `ln last` (ConvNeXt)"
    field = "permute"

    def axis_order(self, rank: int) -> tuple[int, ...]:
        return (*range(1, rank), 0)

    def infer_shape(self, p: ChannelsLastParams, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise LayerError(Code.WRONG_INPUT_RANK, f"`channels_last` needs a feature map, got a flat {describe_shape(shape)}")
        return (*shape[1:], shape[0])


class ChannelsFirstParams(Params):
    kind: Literal["channels_first"] = "channels_first"


@register
class ChannelsFirst(LayerKind):
    name = "channels_first"
    family = "shape"
    Params = ChannelsFirstParams
    summary = "H x W x C -> C x H x W: channels moved back in front"
    field = "permute"

    def axis_order(self, rank: int) -> tuple[int, ...]:
        return (rank - 1, *range(rank - 1))

    def infer_shape(self, p: ChannelsFirstParams, shape: Shape) -> Shape:
        if len(shape) < 2:
            raise LayerError(Code.WRONG_INPUT_RANK, f"`channels_first` needs a feature map, got a flat {describe_shape(shape)}")
        return (shape[-1], *shape[:-1])
