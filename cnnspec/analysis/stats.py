"""Per-layer figures and the receptive-field recurrence."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from cnnspec.layers.base import Window

#: bytes of one fp32 activation
FP32 = 4


@dataclass(frozen=True)
class Field_:
    """Receptive field along one input axis: size `r`, jump `j`, current extent `n`.

    r_out = r_in + (k_eff - 1) * j_in,  j_out = j_in * s
    """

    r: Fraction
    j: Fraction
    n: int

    def through(self, kernel: int, stride: Fraction, n_out: int) -> "Field_":
        """The field after a window of effective size `kernel` and step `stride`.

        >>> f = Field_(Fraction(1), Fraction(1), 224).through(11, Fraction(4), 55)
        >>> int(f.r), int(f.j)
        (11, 4)
        """
        return Field_(self.r + (kernel - 1) * self.j, self.j * stride, n_out)

    def whole(self) -> "Field_":
        """The field of a unit that sees every position (a dense layer after `flatten`)."""
        return Field_(self.r + (self.n - 1) * self.j, self.j * self.n, 1)


ReceptiveField = tuple[Field_, ...]


def start_field(spatial: tuple[int, ...]) -> ReceptiveField:
    return tuple(Field_(Fraction(1), Fraction(1), n) for n in spatial)


def apply_window(rf: ReceptiveField, window: Window | None, out_spatial: tuple[int, ...]) -> ReceptiveField:
    """The field after a layer. A window over other axes than the input's (after a reshape
    changed the rank, when the field already spans the whole input) leaves it as it is."""
    if window is not None and len(window.kernel) != len(rf):
        return rf
    if window is None:
        if len(out_spatial) == len(rf):
            return tuple(Field_(f.r, f.j, n) for f, n in zip(rf, out_spatial))
        return rf
    return tuple(f.through(k, s, n) for f, k, s, n in zip(rf, window.kernel, window.stride, out_spatial))


def merge_fields(fields: list[ReceptiveField]) -> ReceptiveField:
    """Across branches, the widest field along each input axis."""
    fields = [f for f in fields if f]
    if not fields:
        return ()
    rank = max(len(f) for f in fields)
    merged = []
    for i in range(rank):
        along = [f[i] for f in fields if len(f) > i]
        merged.append(Field_(max(a.r for a in along), max(a.j for a in along), along[0].n))
    return tuple(merged)


def field_sizes(rf: ReceptiveField) -> list[int]:
    """The field's size along each input axis, rounded up where upsampling made it fractional."""
    return [-(-f.r.numerator // f.r.denominator) for f in rf]


def describe_field(rf: ReceptiveField) -> str:
    """`195` for a square field, `7x11` otherwise; rounded up where upsampling made it fractional."""
    sizes = field_sizes(rf)
    if not sizes:
        return "-"
    return str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))


@dataclass
class Row:
    """One line of the summary: a layer or a merge."""

    id: int
    path: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    buffers: int
    macs: int
    rf: ReceptiveField
    depth: int
    scopes: tuple[str, ...]
    trainable: int = 0
    line: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def activation_bytes(self) -> int:
        count = 1
        for d in self.out_shape:
            count *= d
        return count * FP32
