"""The layer registry: everything about a layer kind in one place.

A kind is a `LayerKind` subclass registered with `@register`: its parameter model, shape rule
and costs, its state (the parameters and buffers it saves, from which the counts, the
state_dict shapes and the random initialisation derive), its traits (what the lints and the
backends ask of a kind, declared as data), how it moves the receptive field (`field`, with its
`window` and `feature_reads`) and the values its options take in the random specs of the tests
(`ranges`). The parser, the checker, the summary and the backends all look kinds
up in `REGISTRY`; a test fails, naming the kind, if any kind or option lacks a lowering, a
state declaration or a range.

Shapes are per sample, the batch dimension left out: `(C, *spatial)` for feature maps,
`(F,)` for flat vectors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict

from cnnspec.codes import Code
from cnnspec.layers.domains import Domain
from cnnspec.layers.formulas import product
from cnnspec.registry import Registry

Shape = tuple[int, ...]


class LayerError(Exception):
    """A layer cannot be applied: becomes a located diagnostic.

    `arg` names the argument to point at (a positional name or option key), if any.
    """

    def __init__(self, code: Code, message: str, *, arg: str | None = None, label: str = "",
                 help: str | None = None):
        super().__init__(message)
        self.code, self.message, self.arg, self.label, self.help = code, message, arg, label, help


class Params(BaseModel):
    """Base of every layer's parameter model: frozen, strict, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, defer_build=True)


# ---------------------------------------------------------------- how outputs read inputs (the receptive field)

@dataclass(frozen=True)
class Sliding:
    """Output position `o` reads the input positions `o*s - pad + t*d`, `t` = 0 .. k-1: the window of a
    convolution or a pool (`pad` is the padding before the first position). A tap in the padding
    reads nothing (`mode` zeros) or, as PyTorch pads, the position `source` gives.

    >>> list(Sliding(3, 2, 1).taps(0)), list(Sliding(3, 1, 0, 2).taps(1))
    ([-1, 0, 1], [1, 3, 5])
    >>> [Sliding(3, mode=mode).source(-1, 5) for mode in ("zeros", "reflect", "replicate", "circular")]
    [None, 1, 0, 4]
    """

    k: int
    s: int = 1
    pad: int = 0
    d: int = 1
    mode: str = "zeros"

    def sources(self, reads: range, n: int):
        """The input positions that the taps `reads` read from an input of `n`, in order."""
        if self.mode == "zeros":
            return clip(reads, n)
        if len(reads) > 2 * n:
            # a window wider than twice the input reads all of it, whichever way it pads
            return range(n)
        return sorted({self.source(q, n) for q in reads})

    def source(self, q: int, n: int) -> int | None:
        """The input position that tap `q` reads from an input of `n`."""
        if 0 <= q < n:
            return q
        if self.mode == "reflect":
            return -q if q < 0 else 2 * (n - 1) - q
        if self.mode == "replicate":
            return 0 if q < 0 else n - 1
        if self.mode == "circular":
            return q % n
        return None

    @property
    def period(self) -> tuple[int, int]:
        """(outputs, inputs): `period[0]` outputs further on, the taps are `period[1]` inputs further on."""
        return 1, self.s

    def taps(self, o: int):
        start = o * self.s - self.pad
        return range(start, start + (self.k - 1) * self.d + 1, self.d)


@dataclass(frozen=True)
class Transposed:
    """Output position `o` of a transposed convolution receives the input positions `i` with
    `o = i*s - pad + t*d` for a tap `t` = 0 .. k-1: none, one or several, by the output's phase.

    >>> [list(Transposed(3, 2, 1).taps(o)) for o in range(4)], list(Transposed(2, 2, 0, 2).taps(1))
    ([[0], [0, 1], [1], [1, 2]], [])
    """

    k: int
    s: int = 1
    pad: int = 0
    d: int = 1

    @property
    def period(self) -> tuple[int, int]:
        return self.s, 1

    def taps(self, o: int) -> range:
        from math import gcd

        # the taps t with t*d = o + pad (mod s) step by s/g; each gives i = (o + pad - t*d) / s
        g = gcd(self.d, self.s)
        target = o + self.pad
        if target % g:
            return range(0)
        cycle = self.s // g
        first = (target // g) * pow(self.d // g, -1, cycle) % cycle if cycle > 1 else 0
        if first >= self.k:
            return range(0)
        last = first + (self.k - 1 - first) // cycle * cycle
        return range((target - last * self.d) // self.s, (target - first * self.d) // self.s + 1, self.d // g)


@dataclass(frozen=True)
class Resampled:
    """Output position `o` of `m` reads input positions of `n` by `rule`: `bins` floor(o*n/m) ..
    ceil((o+1)*n/m) - 1 (adaptive pooling), `nearest` floor(o*n/m), exactly, as PyTorch's kernels
    do; `linear` (bilinear; `corners` with `align_corners`) the two neighbours of the source
    position (o + 1/2)*n/m - 1/2 (o*(n-1)/(m-1)), `scale` being the factor asked for if one was,
    computed as PyTorch's CPU kernel does in double precision: one neighbour where it falls on
    a position (a float32 model, which computes in single precision, can differ there), and one
    at the borders.

    >>> [Resampled(4, 8, "nearest").taps(o) for o in (0, 1, 2)], list(Resampled(5, 3, "bins").taps(1))
    ([[0], [0], [1]], [1, 2, 3])
    >>> Resampled(4, 8, "linear").taps(2), Resampled(3, 9, "linear").taps(4), Resampled(3, 5, "corners").taps(2)
    ([0, 1], [1], [1])
    >>> Resampled(18, 14, "linear").taps(10), Resampled(14, 20, "nearest").taps(10)
    ([13, 14], [7])
    """

    n: int
    m: int
    rule: str
    scale: float | None = None

    @property
    def period(self) -> tuple[int, int]:
        from math import gcd

        n, m = (self.n - 1, self.m - 1) if self.rule == "corners" else (self.n, self.m)
        if m == 0:
            return 1, 0
        g = gcd(n, m)
        return m // g, n // g

    def taps(self, o: int) -> list[int]:
        import math
        from fractions import Fraction

        n, m = self.n, self.m
        if self.rule == "bins":
            # a range, not a list: a bin of a long axis holds millions of positions
            return range(o * n // m, -(-(o + 1) * n // m))
        if m == n:
            return [o]
        real = 0 <= o < m
        if self.rule == "nearest":
            return [min(o * n // m, n - 1) if real else o * n // m]
        if self.rule == "corners":
            source = o * ((n - 1) / (m - 1)) if m > 1 else 0.0
        else:
            ratio = 1.0 / self.scale if self.scale else n / m
            # ratio * (o + 1/2) - 1/2, rounded once, as the fused multiply-add PyTorch's kernel is
            source = float(Fraction(ratio) * Fraction(2 * o + 1, 2) - Fraction(1, 2))
            if real and source < 0:
                source = 0.0
        if not real:
            first = math.floor(source)
            return [first] if source == first else [first, first + 1]
        # PyTorch floors through single precision (floorf), then weighs the two neighbours
        first = min(math.floor(float32(source)), n - 1)
        weight = min(max(source - first, 0.0), 1.0)
        reads = ([first] if weight < 1 else []) + ([first + 1] if weight > 0 and first < n - 1 else [])
        return reads or [first]


def clip(reads, n: int):
    """The taps `reads` that fall on an input of `n` (a range stays a range)."""
    if isinstance(reads, range) and reads.step > 0:
        low = reads.start if reads.start >= 0 else reads.start + -(-(0 - reads.start) // reads.step) * reads.step
        return range(low, min(reads.stop, n), reads.step) if low < n else range(0)
    return [q for q in reads if 0 <= q < n]


def float32(value: float) -> float:
    """`value` rounded to single precision."""
    import struct

    return struct.unpack("f", struct.pack("f", value))[0]


@dataclass(frozen=True)
class Grouped:
    """Output channel `o` reads the `cin` input channels of its group (a convolution's groups; one
    group reads them all). Matters to the receptive field only where positions sit on the
    channel axis (after `channels_last`).

    >>> Grouped(2, 3).taps(4)
    range(2, 4)
    """

    cin: int
    cout: int

    @property
    def period(self) -> tuple[int, int]:
        return self.cout, self.cin

    def taps(self, o: int):
        group = o // self.cout
        return range(group * self.cin, (group + 1) * self.cin)


@dataclass(frozen=True)
class Shuffled:
    """Output channel `o` of `channel_shuffle` reads one input channel: ShuffleNet's interleaving
    of `groups` groups of `channels` (not in order: where positions sit on the channel axis, the
    shuffle rearranges them).

    >>> [Shuffled(2, 6).taps(o)[0] for o in range(6)]
    [0, 3, 1, 4, 2, 5]
    """

    groups: int
    channels: int

    @property
    def period(self) -> tuple[int, int]:
        return self.channels, self.channels

    def taps(self, o: int) -> list[int]:
        block, i = divmod(o, self.channels)
        return [block * self.channels + (i % self.groups) * (self.channels // self.groups) + i // self.groups]


@dataclass(frozen=True)
class Everything:
    """Every output position reads every input position: global pooling, adaptive pooling to one
    position."""


Taps = Sliding | Transposed | Resampled | Grouped | Shuffled | Everything


@dataclass(frozen=True)
class Window:
    """How a layer's output positions read its input's, one rule per spatial dimension, for the
    receptive field. A layer with no window is pointwise."""

    axes: tuple[Taps, ...]


@dataclass(frozen=True)
class Warning_:
    code: Code
    message: str
    arg: str | None = None
    help: str | None = None


@dataclass(frozen=True)
class Traits:
    """What the lints and the backends ask of a kind, declared once on the kind."""

    #: keeps the map's geometry: what it gives at a position comes from that position (and, for
    #: a normalisation, statistics over the map); W106 looks through it in a run of convs
    pointwise: bool = False
    #: a nonlinearity applied to what a layer computed (W109)
    activation: bool = False
    #: its output is a distribution over the channels: most losses want the logits (W111), and
    #: another activation after it is not doubled up (W109)
    probabilities: bool = False
    #: zeroes values at random in training, the identity at inference (W110)
    dropout: bool = False
    #: adds a learnt bias per output channel when its `bias` option is on (W104)
    bias: bool = False
    #: subtracts each channel's mean, cancelling a bias added just before it (W104)
    centres: bool = False
    #: normalises at inference with statistics learnt in training: dropout before it shifts them
    #: (W110), and a conv before it can absorb it (the ONNX export folds it)
    running_statistics: bool = False


#: what a random initialisation puts in a state entry: `FanIn` draws uniformly in
#: +-1/sqrt(fan_in) of the entry named `of` (PyTorch's default for conv and linear),
#: `Constant` fills a value, `Given` holds the spec's literal numbers
@dataclass(frozen=True)
class FanIn:
    of: str = "weight"


@dataclass(frozen=True)
class Constant:
    value: float
    #: the interval a comparison of backends draws it from instead (`random_weights(statistics=True)`),
    #: so that a normalisation's statistics are exercised for real; `None` keeps the value
    spread: tuple[float, float] | None = None


@dataclass(frozen=True)
class Given:
    values: tuple


Init = Union[FanIn, Constant, Given]


@dataclass(frozen=True)
class Tensor:
    """One entry of a layer's state_dict.

    `key` is its name below the layer's path (`""` for a bare parameter saved under the path
    itself); `role` says whether it is a learnable parameter, a buffer (running statistics) or
    a counter (an integer, `num_batches_tracked`); `frozen` parameters are not trained.
    """

    key: str
    shape: Shape
    init: Init
    role: Literal["parameter", "buffer", "counter"] = "parameter"
    frozen: bool = False

    @property
    def size(self) -> int:
        return product(self.shape)


@dataclass(frozen=True)
class StateCounts:
    #: learnable parameters, those of them not frozen, and buffers (counters left out)
    params: int
    trainable: int
    buffers: int


#: results `per_parameters` remembers, at most: equal layers share one parameters object
#: (`cnnspec.analysis.figures`), so a network has far fewer than its layers
REMEMBERED = 4096


def per_parameters(function):
    """`function(p, shape, *rest)`, worked out once per parameters object `p` and input shape (what
    `rest` holds follows from the parameters: their kind). The parameters are looked up by
    identity, and held while remembered so that no other object takes their identity: hashing
    and comparing a Pydantic model cost more than most of what is remembered."""
    remembered: dict[tuple[int, Shape], tuple[object, object]] = {}

    @functools.wraps(function)
    def remembering(p, shape: Shape, *rest):
        shape = tuple(shape)
        key = (id(p), shape)
        try:
            known = remembered.get(key)
        except TypeError:
            # a shape of symbolic sizes (`cnnspec.analysis.sizes`) does not hash
            return function(p, shape, *rest)
        if known is not None and known[0] is p:
            return known[1]
        result = function(p, shape, *rest)
        if len(remembered) >= REMEMBERED:
            remembered.clear()
        remembered[key] = (p, result)
        return result

    return remembering


def count_state(state: tuple[Tensor, ...]) -> StateCounts:
    params = trainable = buffers = 0
    for tensor in state:
        if tensor.role == "parameter":
            params += tensor.size
            trainable += 0 if tensor.frozen else tensor.size
        elif tensor.role == "buffer":
            buffers += tensor.size
    return StateCounts(params, trainable, buffers)


def affine_state(channels: int, affine: bool) -> tuple[Tensor, ...]:
    """A normalisation's learnt scale (1) and shift (0) per channel, when it is affine."""
    if not affine:
        return ()
    return (Tensor("weight", (channels,), Constant(1.0, (0.5, 1.5))),
            Tensor("bias", (channels,), Constant(0.0, (-0.5, 0.5))))


def tracked_statistics(channels: int) -> tuple[Tensor, ...]:
    """The running mean (0) and variance (1) per channel and the count of batches seen, as
    PyTorch's BatchNorm and tracking InstanceNorm save them."""
    return (Tensor("running_mean", (channels,), Constant(0.0, (-0.5, 0.5)), "buffer"),
            Tensor("running_var", (channels,), Constant(1.0, (0.5, 2.0)), "buffer"),
            Tensor("num_batches_tracked", (), Constant(0), "counter"))


def kernel_state(weight: Shape, out_channels: int, bias: bool, literal: tuple | None = None,
                 frozen: bool = False) -> tuple[Tensor, ...]:
    """A learnt kernel and its bias (uniform by the kernel's fan-in), or the spec's literal
    kernel with a zero bias."""
    if literal is not None:
        weight_init, bias_init = Given(literal), Constant(0.0)
    else:
        weight_init = bias_init = FanIn()
    return ((Tensor("weight", weight, weight_init, frozen=frozen),)
            + ((Tensor("bias", (out_channels,), bias_init, frozen=frozen),) if bias else ()))


#: how a kind moves the receptive field (`cnnspec.analysis.stats.layer_field`):
#: - "pointwise": each output position sees that input position alone (in eval mode);
#: - "reads": its `window` over the spatial axes and its `feature_reads` along the others;
#: - "reshape": it lays its elements out anew (`flatten`, `reshape`);
#: - "permute": it moves the tensor axes (`axis_order`).
FieldMove = Literal["pointwise", "reads", "reshape", "permute"]


class LayerKind:
    """One layer kind. Subclasses set the class attributes and override what applies."""

    name: ClassVar[str]
    family: ClassVar[str]
    Params: ClassVar[type[Params]]
    #: names that positional arguments bind to, in order
    positional: ClassVar[tuple[str, ...]] = ()
    #: bare words accepted as arguments: word -> (field, value)
    flags: ClassVar[dict[str, tuple[str, Any]]] = {}
    #: a one-line description for `cnnspec layers` and the docs
    summary: ClassVar[str] = ""
    #: what messages call a layer of the kind ("batch norm"), where not by its written name
    noun: ClassVar[str] = ""
    #: what the lints and the backends ask of the kind
    traits: ClassVar[Traits] = Traits()
    #: other frameworks' names for the kind (PyTorch's module names first), lower case without
    #: underscores or a `1d`/`2d`/`3d` ending, each mapped to how the kind is written for it where
    #: that differs beyond the name; the kind's own name counts without being listed
    #: (`cnnspec.layers.aliases`)
    pytorch_names: ClassVar[dict[str, str | None]] = {}
    #: how it moves the receptive field (`FieldMove`): declared by every kind, no default, so
    #: that a new kind says it (a test fails for one that does not)
    field: ClassVar[FieldMove]
    #: the values each option (each field of `Params`) takes in the tests' random specs, in the
    #: order they are drawn; a test fails if a field has none
    ranges: ClassVar[dict[str, Domain]] = {}
    #: how the summary names the buffers the kind saves
    buffers_note: ClassVar[str] = ""
    #: options that change training alone (a momentum, a dropout rate): an export for
    #: inference does not show them
    training_only: ClassVar[tuple[str, ...]] = ()
    #: options the shape rule alone decides (which inputs the layer takes, its output shape):
    #: the lowerings see them in the shapes
    shape_only: ClassVar[tuple[str, ...]] = ()
    #: an option that may name a value instead of a size (`upsample size=c1`): the layer then
    #: resizes to that value's spatial size, which the checker knows and the backends read from
    #: the value at run time; the value gives no receptive field, only its size
    size_from_value: ClassVar[str | None] = None

    @functools.cached_property
    def fields(self) -> frozenset[str]:
        """The parameter model's fields but `kind`: what arguments, flags and options bind to."""
        return frozenset(self.Params.model_fields) - {"kind"}

    def infer_shape(self, p: Params, shape: Shape) -> Shape:
        """The output shape for one sample, or `LayerError`."""
        return shape

    def state(self, p: Params, shape: Shape) -> tuple[Tensor, ...]:
        """The parameters and buffers the layer saves, in PyTorch's state_dict order."""
        return ()

    def count_params(self, p: Params, shape: Shape) -> int:
        """Learnable parameters: the sizes of the parameters in `state`."""
        return count_state(self.state(p, shape)).params

    def count_buffers(self, p: Params, shape: Shape) -> int:
        """Non-learnable state saved with the model (running statistics; counters left out)."""
        return count_state(self.state(p, shape)).buffers

    def count_macs(self, p: Params, shape: Shape, out: Shape) -> int:
        """Multiply-accumulates per sample, in torchvision's convention (conv and linear only)."""
        return 0

    def window(self, p: Params, shape: Shape, out: Shape) -> Window | None:
        return None

    def feature_reads(self, p: Params, shape: Shape, out: Shape) -> dict[int, Taps]:
        """For a "reads" kind, which input indices each output reads along the tensor axes its
        window does not cover, by axis of the per-sample shape (0: the channels); an axis left
        out is read index for index."""
        return {}

    def axis_order(self, rank: int) -> tuple[int, ...]:
        """For a "permute" kind, the input axis each output axis holds."""
        raise NotImplementedError(f"`{self.name}` does not move its axes")

    def warnings(self, p: Params, shape: Shape) -> list[Warning_]:
        return []

    def brief(self, p: Params, rank: int) -> list[str]:
        """The key options a diagram shows after the kind's name (`64 3x3 /2` for a conv), for a
        layer over `rank` spatial dimensions."""
        return []


REGISTRY: Registry[str, LayerKind] = Registry("layer kind `{}`")


def register(cls: type[LayerKind]) -> type[LayerKind]:
    """Add a kind to the registry, refusing a name already taken."""
    REGISTRY.add(cls.name, cls())
    return cls


# ---------------------------------------------------------------- shape helpers

def spatial_rank(shape: Shape) -> int:
    return len(shape) - 1


def describe_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


def dims_text(value) -> str:
    """A size or a size per dimension as written: `3`, `3x3`."""
    return "x".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)


def kernel_text(value, rank: int) -> str:
    """A kernel size spelt out per spatial dimension: `1x1`, not `1`."""
    return dims_text(value if isinstance(value, (tuple, list)) else (value,) * rank)


def is_uniform(value, default) -> bool:
    """Whether a size (or each of its dimensions) is `default` or left out."""
    return all(v == default or v is None for v in (value if isinstance(value, (tuple, list)) else (value,)))


def need_spatial(kind: str, shape: Shape, min_rank: int = 1, max_rank: int = 3) -> int:
    """The number of spatial dimensions, or E214 when the layer cannot take this input."""
    rank = spatial_rank(shape)
    if rank < min_rank:
        raise LayerError(Code.WRONG_INPUT_RANK, f"`{kind}` needs a feature map with spatial dimensions, got a flat {describe_shape(shape)}",
                         help="move the layer before `flatten`")
    if rank > max_rank:
        raise LayerError(Code.WRONG_INPUT_RANK, f"`{kind}` supports at most {max_rank} spatial dimensions, got {describe_shape(shape)}")
    return rank


def per_dim(value: int | tuple[int, ...], rank: int, arg: str) -> tuple[int, ...]:
    """Broadcast an int to every spatial dimension; check a tuple has one value per dimension."""
    if isinstance(value, int):
        return (value,) * rank
    if len(value) != rank:
        dims = "dimension" if rank == 1 else "dimensions"
        raise LayerError(Code.KERNEL_RANK_MISMATCH, f"`{arg}` has {len(value)} values but the input has {rank} spatial {dims}",
                         arg=arg, help="give one value per spatial dimension, or a single integer")
    return tuple(value)


def resolve_padding(pad, rank: int, sizes, kernel, stride, dilation, arg: str = "pad") -> tuple[tuple[int, int], ...]:
    """(begin, end) padding per spatial dimension from int, per-dim, asymmetric, `same` or `valid`."""
    from cnnspec.layers.formulas import same_padding

    if pad == "valid":
        return ((0, 0),) * rank
    if pad == "same":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(sizes, kernel, stride, dilation))
    if isinstance(pad, int):
        return ((pad, pad),) * rank
    if pad and isinstance(pad[0], tuple):
        if len(pad) != rank:
            raise LayerError(Code.KERNEL_RANK_MISMATCH, f"`{arg}` gives {len(pad)} (begin, end) pairs but the input has {rank} spatial dimensions", arg=arg)
        return tuple((int(b), int(e)) for b, e in pad)
    return tuple((p, p) for p in per_dim(tuple(pad), rank, arg))
