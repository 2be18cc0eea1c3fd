"""The layer registry: every layer kind, its parameter model, shape rule and costs in one place.

A kind is a `LayerKind` subclass registered with `@register`. The parser, the checker, the
summary and the backends all look kinds up in `REGISTRY`; a test fails if any kind lacks a
shape rule, a cost or a lowering.

Shapes are per sample, the batch dimension left out: `(C, *spatial)` for feature maps,
`(F,)` for flat vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from cnnspec.codes import Code

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


@dataclass(frozen=True)
class Window:
    """How a layer widens the receptive field, per spatial dimension.

    `kernel` is the effective kernel d*(k-1)+1; `stride` the step (a fraction below 1 for
    upsampling). A layer with no window is pointwise.
    """

    kernel: tuple[int, ...]
    stride: tuple[Fraction, ...]


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


REGISTRY: dict[str, LayerKind] = {}


def register(cls: type[LayerKind]) -> type[LayerKind]:
    """Add a kind to the registry, refusing a name already taken."""
    if cls.name in REGISTRY:
        raise ValueError(f"layer kind `{cls.name}` registered twice")
    REGISTRY[cls.name] = cls()
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
