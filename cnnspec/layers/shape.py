"""Shape layers: `flatten`, `reshape`, `channel_shuffle`, `identity`, `chunk`, `slice`, `split`, `channels_last`
and `channels_first`."""

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

    def brief(self, p: ReshapeParams, rank: int) -> list[str]:
        return [dims_text(p.shape)]


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

    def brief(self, p: ChannelShuffleParams, rank: int) -> list[str]:
        return [str(p.groups)]


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


def channels_from(first) -> dict[int, Taps]:
    """The channel reads of a run of channels starting at input channel `first`: output channel
    `o` is input channel `first + o`."""
    return {0: Sliding(1, 1, -first)}


def need_channels(kind: str, shape: Shape) -> None:
    """E214 for a flat input, which has no channels to take."""
    if len(shape) < 2:
        raise LayerError(Code.WRONG_INPUT_RANK, f"`{kind}` takes channels of a feature map, got a flat {describe_shape(shape)}",
                         help=f"{kind} before `flatten`")


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
    ranges = {"chunks": Divisors(), "index": Ints(0, lambda w: w.get("chunks") - 1, when=lambda w: "chunks" in w.fields)}
    field = "reads"

    def feature_reads(self, p: ChunkParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return channels_from(p.index * out[0])

    def infer_shape(self, p: ChunkParams, shape: Shape) -> Shape:
        if p.index >= p.chunks:
            raise LayerError(Code.INVALID_VALUE, f"chunk index {p.index} is out of range for {p.chunks} chunks", arg="index",
                             help=f"chunks are numbered from 0 to {p.chunks - 1}")
        if shape[0] % p.chunks:
            raise LayerError(Code.GROUPS_MISMATCH, f"{p.chunks} chunks do not divide the {shape[0]} channels", arg="chunks")
        return (shape[0] // p.chunks, *shape[1:])

    def brief(self, p: ChunkParams, rank: int) -> list[str]:
        return [str(p.chunks), str(p.index)]


def channel_bounds(start: int, end: int | None, channels) -> tuple:
    """The first channel and the one past the last of Python's `x[:, start:end]` over `channels`:
    a negative index counts from the end, `None` is the end, and both are clipped to the channels.

    >>> channel_bounds(16, 48, 64), channel_bounds(-16, None, 64), channel_bounds(8, -8, 20), channel_bounds(4, 99, 10)
    ((16, 48), (48, 64), (8, 12), (4, 10))
    """
    def clipped(index):
        if index < 0:
            index = index + channels
        return max(0, min(index, channels))
    return clipped(start), clipped(channels if end is None else end)


class SliceParams(Params):
    kind: Literal["slice"] = "slice"
    start: int
    end: int | None = None


@register
class Slice(LayerKind):
    name = "slice"
    family = "shape"
    Params = SliceParams
    positional = ("start", "end")
    summary = "channels `start` to `end` (not included), as x[:, start:end]: negative from the end, no `end` to the last"
    # torch.narrow(x, 1, 0, 2) is x[:, 0:2]
    pytorch_names = {"narrow": "slice 0 2"}
    ranges = {"start": Ints(0, lambda w: w.channels - 1),
              "end": Ints(lambda w: w.get("start") + 1, lambda w: w.channels, chance=0.7)}
    field = "reads"

    def brief(self, p: SliceParams, rank: int) -> list[str]:
        return [f"{p.start}:{'' if p.end is None else p.end}"]

    def feature_reads(self, p: SliceParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return channels_from(channel_bounds(p.start, p.end, shape[0])[0])

    def infer_shape(self, p: SliceParams, shape: Shape) -> Shape:
        need_channels("slice", shape)
        first, stop = channel_bounds(p.start, p.end, shape[0])
        if stop <= first:
            end = "" if p.end is None else p.end
            raise LayerError(Code.EMPTY_OUTPUT, f"`slice {p.start} {end}`".replace(" `", "`") + f" takes no channel of {shape[0]}",
                             arg="start", help=f"channels are numbered from 0 to {shape[0] - 1}; negative indices count "
                                               "from the end, as in Python")
        return (stop - first, *shape[1:])


class SplitParams(Params):
    kind: Literal["split"] = "split"
    sizes: Union[Annotated[int, Field(ge=1)], tuple[Annotated[int, Field(ge=1)], ...]]
    index: Annotated[int, Field(ge=0)]


def split_count(sizes, channels):
    """How many pieces `torch.split(x, sizes, dim=1)` makes of `channels`.

    >>> split_count((16, 32, 16), 64), split_count(3, 8)
    (3, 3)
    """
    return len(sizes) if isinstance(sizes, tuple) else -(-channels // sizes)


def split_piece(sizes, index: int, channels) -> tuple:
    """(first channel, channel count) of piece `index` of `torch.split(x, sizes, dim=1)`: the
    listed sizes, or pieces of `sizes` channels, the last one smaller where they do not divide.

    >>> split_piece((16, 32, 16), 2, 64), split_piece(3, 2, 8)
    ((48, 16), (6, 2))
    """
    if isinstance(sizes, tuple):
        return sum(sizes[:index]), sizes[index]
    return index * sizes, min(sizes, channels - index * sizes)


def split_choices(w) -> tuple:
    """Sizes that fit the input's channels, listed or one size for every piece."""
    c = w.channels
    return tuple(dict.fromkeys([(c,), (1, c - 1) if c > 1 else c, (c - 2, 1, 1) if c > 2 else 1, max(1, c // 3),
                                max(1, c // 2)]))


@register
class Split(LayerKind):
    name = "split"
    family = "shape"
    Params = SplitParams
    positional = ("sizes", "index")
    summary = "piece `index` of torch.split(x, sizes, dim=1): channel pieces of the listed sizes (or of one size, the last smaller)"
    ranges = {"sizes": Choice(split_choices),
              "index": Ints(0, lambda w: split_count(w.get("sizes"), w.channels) - 1,
                            when=lambda w: "sizes" in w.fields)}
    field = "reads"

    def brief(self, p: SplitParams, rank: int) -> list[str]:
        sizes = f"[{','.join(map(str, p.sizes))}]" if isinstance(p.sizes, tuple) else str(p.sizes)
        return [sizes, str(p.index)]

    def feature_reads(self, p: SplitParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return channels_from(split_piece(p.sizes, p.index, shape[0])[0])

    def infer_shape(self, p: SplitParams, shape: Shape) -> Shape:
        need_channels("split", shape)
        channels = shape[0]
        if isinstance(p.sizes, tuple) and sum(p.sizes) != channels:
            raise LayerError(Code.GROUPS_MISMATCH, f"split sizes sum to {sum(p.sizes)}, the input has {channels} channels",
                             arg="sizes", help=f"give sizes that sum to {channels}, as torch.split needs")
        count = split_count(p.sizes, channels)
        if p.index >= count:
            raise LayerError(Code.INVALID_VALUE, f"split index {p.index} is out of range for {count} pieces",
                             arg="index", help=f"pieces are numbered from 0 to {count - 1}")
        return (split_piece(p.sizes, p.index, channels)[1], *shape[1:])


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
