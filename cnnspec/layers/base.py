"""The layer registry: every layer kind, its parameter model, shape rule and costs in one place.

A kind is a `LayerKind` subclass registered with `@register`. The parser, the checker, the
summary and the backends all look kinds up in `REGISTRY`; a test fails if any kind lacks a
shape rule, a cost or a lowering.

Shapes are per sample, the batch dimension left out: `(C, *spatial)` for feature maps,
`(F,)` for flat vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from cnnspec.codes import Code
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

    >>> [Resampled(4, 8, "nearest").taps(o) for o in (0, 1, 2)], Resampled(5, 3, "bins").taps(1)
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
            return list(range(o * n // m, -(-(o + 1) * n // m)))
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

    def infer_shape(self, p: Params, shape: Shape) -> Shape:
        """The output shape for one sample, or `LayerError`."""
        return shape

    def count_params(self, p: Params, shape: Shape) -> int:
        """Learnable parameters."""
        return 0

    def count_buffers(self, p: Params, shape: Shape) -> int:
        """Non-learnable state saved with the model (BatchNorm running statistics)."""
        return 0

    def count_macs(self, p: Params, shape: Shape, out: Shape) -> int:
        """Multiply-accumulates per sample, in torchvision's convention (conv and linear only)."""
        return 0

    def window(self, p: Params, shape: Shape, out: Shape) -> Window | None:
        return None

    def warnings(self, p: Params, shape: Shape) -> list[Warning_]:
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
