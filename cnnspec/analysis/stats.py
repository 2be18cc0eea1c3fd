"""Per-layer figures and the receptive field.

The receptive field of one output position of a layer is the set of input positions it depends
on (every channel of that position; a flat vector is one position holding all its features).
cnnspec gives its extent along each input axis, on an input line without borders: padding
counts, as in the classic figures (AlexNet 195 at its last pool, VGG-16 212 at pool5), so a
field can be larger than the input. Like every receptive field it is an extent: with a stride
larger than the kernel, or dilation, positions inside it may not matter.

Along one input axis, position `p` of a layer sees the input positions `lo(p) .. hi(p)`. On a
grid of integer strides `lo(p) = a + p*j` with the classic recurrence for size and jump,

    r_out = r_in + (k_eff - 1) * j_in,    j_out = j_in * s,    k_eff = d*(k - 1) + 1.

Upsampling, transposed convolutions and adaptive pooling step by a fraction of a position, and
their outputs see different amounts by phase (nearest upsampling by 2 repeats each input twice;
a transposed conv's output may receive one input or two), so `lo` and `hi` are kept exactly, per
phase over one period of the grid (`Field_`). The size shown is the largest field of any position
of the layer.

A merge's field is, at each position, the union of its branches' (after `concat crop`'s offsets).
A global operation (global pooling, adaptive pooling to one position, `flatten`, group norm, a
normalisation, softmax or dense layer across an axis that holds positions) makes every position
see the union over all the positions before it, which is usually the whole input: `whole`. A
branch that pools globally (squeeze-and-excitation's `scale { avgpool global; ... }`) gives the
merge that field at every position; later layers still step over the main path's grid, but the
field stays whole. An axis whose positions are rearranged (a `reshape` that moves them,
`channel_shuffle` or `concat` where positions sit on the channel axis) no longer holds
positions: like `flatten`, the result is one position that sees them all. So is a merge of
branches laid out differently (one permuted by `channels_first`), whose positions meet on no one
grid. Such a tensor is followed element by element (`ElementNode`, up to `MAX_TRACKED` elements):
what a later layer reads of it (a chunk of a flattened vector, the centre a `concat crop` keeps,
a strided conv's taps) sees what those elements saw.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import gcd

from cnnspec.layers.base import Everything, Grouped, LayerKind, Shuffled, Sliding, Taps, Window, clip
from cnnspec.layers.formulas import product

#: bytes of one fp32 activation
FP32 = 4

#: a field's period (positions) beyond which every position is taken to see what all of them do
#: (an upper bound; no real network comes near)
MAX_PERIOD = 4096
#: the most positions or elements followed one by one: beyond, a field is bounded instead (a
#: rearranged axis taken to see the whole input, a flattened tensor's elements not followed)
MAX_TRACKED = 1 << 16

#: a phase that sees nothing through the windows but still sees `const` (after a global
#: operation): the empty interval, which `join` leaves out
BLANK = (math.inf, -math.inf)
#: the union of more taps than are followed one by one
FAR = (-math.inf, math.inf)


def join(a, b):
    """The smallest interval holding both (None is empty)."""
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]))


def join_all(intervals):
    joined = None
    for interval in intervals:
        joined = join(joined, interval)
    return joined


def beyond(seen, found: int, end: int, size: int) -> bool:
    """Whether a field, padding counted, reaches beyond `found` at its `end` (0 the first) on an
    input of `size` positions: what a position depends on lies in the input, so nothing reaches
    beyond its first or its last position."""
    return max(seen[0], 0) < found if end == 0 else min(seen[1], size - 1) > found


def extent(interval) -> int:
    return 0 if interval is None or interval[0] > interval[1] else interval[1] - interval[0] + 1


class Lineage:
    """How a field came about, to find which input positions a position really depends on: the
    windows' taps that fall on real positions (not padding, nor past a map's end), down to the
    input. Compared by identity; remembers what it has worked out."""

    def __init__(self, rule: str, *args):
        self.rule, self.args = rule, args
        self.memo: dict = {}

    def steps(self, p: int, end: int):
        """A generator: yields (field, position, end) for what it needs, returns the `end` (0 the
        first, 1 the last) of what position `p` depends on, or None."""
        rule, args = self.rule, self.args
        if rule == "input":
            return p
        if rule == "constant":
            return None if args[0] is None else args[0][end]
        if rule == "window":
            parent, taps = args
            # the taps on the input's positions (padding that reflects or wraps reads some too)
            reads = taps.sources(taps.taps(p), parent.n) if isinstance(taps, Sliding) else clip(taps.taps(p), parent.n)
            found, blind = None, 0
            for q in (reads if end == 0 else reversed(reads)):
                seen = parent.seen(q)
                if seen is None:
                    blind += 1
                    if blind > len(parent.phases):
                        # what sees nothing repeats with the period: so do the taps after
                        break
                    continue
                blind = 0
                if parent.ordered and (seen[1] < 0 or seen[0] >= parent.size):
                    # its field, padding counted, lies in the padding alone: it depends on nothing
                    # (zero padding; a reflected or wrapped one is not `ordered`)
                    continue
                if found is not None and parent.ordered and not beyond(seen, found, end, parent.size):
                    # the fields grow with the position, padding counted, and what a position
                    # depends on lies inside its field: no further tap can reach beyond
                    break
                value = yield parent, q, end
                if value is not None:
                    found = value if found is None else (min if end == 0 else max)(found, value)
            return found
        # a union
        found = None
        for branch in args:
            value = yield branch, p, end
            if value is not None:
                found = value if found is None else (min if end == 0 else max)(found, value)
        return found


def real_end(field: "Field_", p: int, end: int):
    """The first (`end` 0) or last input position that position `p` of `field` depends on, None
    for none; worked out without recursion, networks being thousands of layers deep."""
    if not 0 <= p < field.n:
        return None
    key = (p, end)
    memo = field.lineage.memo
    if key in memo:
        return memo[key]
    stack = [(field.lineage.steps(p, end), field.lineage, key)]
    value = None
    while stack:
        steps, lineage, key = stack[-1]
        try:
            # a fresh generator takes None to start
            parent, q, e = steps.send(value)
        except StopIteration as done:
            stack.pop()
            lineage.memo[key] = value = done.value
            continue
        if not 0 <= q < parent.n:
            value = None
        elif (q, e) in parent.lineage.memo:
            value = parent.lineage.memo[(q, e)]
        else:
            stack.append((parent.lineage.steps(q, e), parent.lineage, (q, e)))
            value = None
    return value


@dataclass(frozen=True)
class Field_:
    """The receptive field along one input axis.

    Position `p` of the layer sees, through the windows, the input positions `phases[p % P]`
    shifted by `(p // P) * step`, and with them `const`, which every position sees (the field
    of a global operation or a global branch). A phase of None sees nothing at all (a transposed
    conv's output between its inputs); `BLANK`, nothing through the windows but `const`. `n` is
    the layer's extent along the tensor axis that holds this input axis (`axis`: its index in
    the per-sample shape, 0 for channels; None once the axis was gathered into one position),
    `size` the input's.

    The windows' field counts padding, on an input without borders (the classic figure);
    `real(p)` is what position `p` depends on in fact, from the `lineage`: the union over all
    positions that a global operation takes (`const`) is a real one, so that `whole` says that
    the first and the last input positions matter (SqueezeNet 1.1's stem conv, 3x3 with stride 2
    and no padding, never reads the last row and column of a 224x224 input).

    The classic recurrence is the case of one phase, AlexNet's first conv:

    >>> f = start_field((224,))[0].through(Sliding(11, 4, 2), 55)
    >>> f.r, f.j, f.at(1), f.real(0)
    (Fraction(11, 1), Fraction(4, 1), (2, 12), (0, 8))
    """

    phases: tuple
    step: int
    n: int
    size: int
    axis: int | None
    const: tuple[int, int] | None = None
    lineage: Lineage | None = None
    #: whether what positions depend on grows with the position (not after a shuffle of the
    #: positions, nor padding that reflects or wraps the input)
    ordered: bool = True

    # ------------------------------------------------------------ reading
    def at(self, p: int):
        """What position `p` sees through the windows (without `const`)."""
        q, i = divmod(p, len(self.phases))
        seen = self.phases[i]
        return None if seen is None else (seen[0] + q * self.step, seen[1] + q * self.step)

    def seen(self, p: int):
        """Everything position `p` sees, padding counted: (first, last) input positions, None for
        none."""
        local = self.at(p)
        if local is None:
            return None
        seen = join(local, self.const)
        return None if seen[0] > seen[1] else seen

    def real(self, p: int):
        """The first and the last input positions that position `p` depends on in fact."""
        first = real_end(self, p, 0)
        return None if first is None else (first, real_end(self, p, 1))

    def real_span(self, first: int = 0, last: int | None = None):
        """The first and the last input positions that positions `first` .. `last` (all by
        default) depend on."""
        last = self.n - 1 if last is None else last
        if not self.ordered and last - first + 1 > MAX_TRACKED:
            return join((0, self.size - 1), self.const)
        first, last = self.reaching(first, last)
        ends = []
        for end, positions in ((0, range(first, last + 1)), (1, range(last, first - 1, -1))):
            found = None
            for p in positions:
                seen = self.seen(p)
                if seen is None:
                    continue
                if found is not None and self.ordered and not beyond(seen, found, end, self.size):
                    break
                value = real_end(self, p, end)
                if value is not None:
                    found = value if found is None else (min if end == 0 else max)(found, value)
            if found is None:
                return None
            ends.append(found)
        return tuple(ends)

    def reaching(self, first: int, last: int) -> tuple[int, int]:
        """`first` .. `last` narrowed to the positions whose field, padding counted, reaches the
        input: one past the padding on either side depends on nothing, so a scan for what the
        positions depend on starts where the input begins, not 10^5 positions of padding before
        it. For an ordered field without `const`, from each phase's arithmetic:
        `phase + q * step` meets [0, size - 1] from the q that ends at 0 or beyond, up to the q that
        starts at size - 1 or before."""
        if not self.ordered or self.const is not None or self.step <= 0:
            return first, last
        period = len(self.phases)
        lows, highs = [], []
        for i, phase in enumerate(self.phases):
            if phase is None or phase[0] > phase[1]:
                continue
            low_q = max(0, -((phase[1]) // self.step))  # ceil(-phase[1] / step): its last tap at 0 or after
            high_q = (self.size - 1 - phase[0]) // self.step  # its first tap at size - 1 or before
            if high_q >= low_q:
                lows.append(low_q * period + i)
                highs.append(high_q * period + i)
        if not lows:
            return first, last
        return max(first, min(lows)), min(last, max(highs))

    @property
    def local(self) -> bool:
        """Whether positions see different things through the windows (False after a global
        operation)."""
        return any(s is not None and s != BLANK for s in self.phases)

    @property
    def j(self) -> Fraction:
        """The jump: input positions between neighbouring positions, on average over a period."""
        return Fraction(self.step, len(self.phases))

    @property
    def whole(self) -> bool:
        """Every position that sees anything depends on the first and the last input positions,
        through a global operation."""
        return self.const is not None and self.const[0] <= 0 and self.const[1] >= self.size - 1

    @property
    def r(self) -> Fraction:
        """The size: the largest field of any position of the layer, in input positions."""
        period = len(self.phases)
        if self.const is None or not self.local or self.n <= 4 * period + 8:
            positions = range(self.n if self.const is not None else min(self.n, period))
            return Fraction(max(extent(self.seen(p)) for p in positions))
        # with a global part: the widest is at an end, or where the windows' part alone is the
        # wider, next to where it passes the global part's ends (the fields grow with the position)
        candidates = set(range(period)) | set(range(self.n - period, self.n))
        for end in (0, 1):
            low, high = 0, self.n - 1
            while low < high:
                middle = (low + high) // 2
                local = self.at(middle)
                if local is not None and local != BLANK and local[end] >= self.const[end]:
                    high = middle
                else:
                    low = middle + 1
            candidates |= set(range(max(low - 2 * period, 0), min(low + 2 * period, self.n)))
        return Fraction(max(extent(self.seen(p)) for p in candidates))

    # ------------------------------------------------------------ transforming
    def through(self, taps: Taps, n_out: int) -> "Field_":
        """The field after a layer whose output position `o` reads the positions `taps.taps(o)`.

        >>> from cnnspec.layers.base import Resampled
        >>> up = start_field((8,))[0].through(Sliding(1, 2), 4)         # every other position
        >>> near = up.through(Resampled(4, 8, "nearest"), 8)            # nearest upsampling by 2
        >>> conv = near.through(Sliding(2), 7)                          # then a 2-tap window
        >>> [conv.at(p) for p in range(3)], conv.r, conv.j
        ([(0, 0), (0, 2), (2, 2)], Fraction(3, 1), Fraction(1, 1))
        """
        if isinstance(taps, Everything):
            return self.gathered(n_out)
        if len(self.phases) == 1 and isinstance(taps, Sliding):
            # the classic recurrence: one phase, a window of integer stride
            seen, step = self.phases[0], self.step
            if seen is not None:
                seen = (seen[0] - taps.pad * step, seen[1] + ((taps.k - 1) * taps.d - taps.pad) * step)
            return Field_((seen,), step * taps.s, n_out, self.size, self.axis, self.const,
                          Lineage("window", self, taps), self.ordered and taps.mode == "zeros")
        outputs, inputs = taps.period
        period = len(self.phases)
        repeats = period // gcd(period, inputs)
        count = outputs * repeats
        step = self.step * repeats * inputs // period
        if count > MAX_PERIOD:
            return self.gathered(n_out)
        phases = [self.across(taps.taps(o)) for o in range(count)]
        if any(phase is FAR for phase in phases):
            return self.gathered(n_out)
        phases, step = reduced(phases, step)
        return Field_(phases, step, n_out, self.size, self.axis, self.const, Lineage("window", self, taps),
                      self.ordered and not isinstance(taps, Shuffled) and getattr(taps, "mode", "zeros") == "zeros")

    def across(self, reads):
        """The union of what positions `reads` see through the windows (`FAR`: too many to
        follow, for a field whose parts do not grow with the position)."""
        period = len(self.phases)
        if len(reads) <= 2 * period + 2:
            return join_all(self.at(q) for q in reads)
        if not self.ordered:
            return join_all(self.at(q) for q in reads) if len(reads) <= MAX_TRACKED else FAR
        # the parts grow with the position, and what sees nothing repeats with the period: the
        # first and the last taps that see anything hold the union
        head = [self.at(q) for q in reads[:period + 1]]
        tail = [self.at(q) for q in reads[-period - 1:]]
        first = next((s for s in head if s is not None and s != BLANK), None)
        last = next((s for s in reversed(tail) if s is not None and s != BLANK), None)
        if first is None:
            return BLANK if BLANK in head else None
        return join(first, last)

    def gathered(self, n_out: int = 1, keep_axis: bool = True) -> "Field_":
        """After a global operation: every position sees the union of all the positions before.
        Without `keep_axis` the tensor axis no longer holds positions (positions rearranged)."""
        return constant(self.real_span(), n_out if keep_axis else 1, self.size, self.axis if keep_axis else None)

    def broadcast(self, n_out: int) -> "Field_":
        """A single position repeated over `n_out` (a global branch of a merge)."""
        return constant(self.real(0), n_out, self.size, self.axis)

    @staticmethod
    def union(fields: list["Field_"], n: int, stacked: bool = False) -> "Field_":
        """At each position, the union of the branches' fields (`stacked`: a concat along the axis
        that holds positions, which stacks them: the axis holds positions no longer). Branches from
        inputs of different sizes lie on one grid (position p of each input is p): the union spans
        the largest, so that `whole` means every position of every input it reaches."""
        size = max(f.size for f in fields)
        axes = {f.axis for f in fields}
        if len(axes) > 1 or stacked:
            return constant(join_all(f.real_span() for f in fields), 1, size, None)
        # the jumps as reduced (step, period) pairs: comparing them as Fractions costs more
        jumps = {(f.step // gcd(f.step, len(f.phases)), len(f.phases) // gcd(f.step, len(f.phases)))
                 for f in fields if f.local}
        if len(jumps) <= 1:
            count = 1
            for f in fields:
                count = count * len(f.phases) // gcd(count, len(f.phases))
            step = 0
            if jumps:
                num, den = jumps.pop()
                step = num * count // den
        else:
            # branches on different grids (a strided branch padded to the same size): tabulated
            count = max(n, 1)
            step = max(-(-num * count // den) for num, den in jumps)
            if count > MAX_PERIOD:
                return constant(join_all(f.real_span() for f in fields), n, size, axes.pop())
        phases, step = reduced([join_all(f.at(p) for f in fields) for p in range(count)], step)
        return Field_(phases, step, n, size, axes.pop(), join_all(f.const for f in fields), Lineage("union", *fields),
                      all(f.ordered for f in fields))


def constant(seen, n: int, size: int, axis: int | None) -> Field_:
    """A field every position of which sees `seen` (None: nothing)."""
    return Field_((None if seen is None else BLANK,), 0, n, size, axis, seen, Lineage("constant", seen))


ReceptiveField = tuple[Field_, ...]


def reduced(phases: list, step: int) -> tuple[tuple, int]:
    """The shortest period that describes the same field.

    >>> reduced([(0, 1), (1, 2), (2, 3), (3, 4)], 4), reduced([(0, 0), (0, 1)], 2)
    ((((0, 1),), 1), (((0, 0), (0, 1)), 2))
    """
    period = len(phases)
    for d in range(1, period):
        if period % d or step * d % period:
            continue
        shift = step * d // period
        if all(phases[i + d] == (None if phases[i] is None else (phases[i][0] + shift, phases[i][1] + shift))
               for i in range(period - d)):
            return tuple(phases[:d]), shift
    return tuple(phases), step


def union_fields(groups) -> ReceptiveField:
    """At each position, the union of the fields of several groups of features."""
    distinct = list(dict.fromkeys(groups))
    if len(distinct) == 1:
        return distinct[0]
    return tuple(Field_.union([fields[a] for fields in distinct], distinct[0][a].n) for a in range(len(distinct[0])))


def coordinates(first: int, last: int, stride: int, n: int) -> tuple[int, int]:
    """The positions along an axis that elements `first` .. `last` of a flat order hold, the axis
    stepping every `stride` elements over `n` positions (all of them where the range wraps).

    >>> coordinates(16, 19, 1, 7), coordinates(16, 19, 7, 4), coordinates(5, 9, 1, 7)
    ((2, 5), (2, 2), (0, 6))
    """
    q0, q1 = first // stride, last // stride
    if q1 - q0 + 1 >= n or q0 % n > q1 % n:
        return 0, n - 1
    return q0 % n, q1 % n


class Channels(Sequence):
    """A layer's receptive field. As a sequence: the field of one position (all its features), per
    input axis (worked out when first read). `segments`: the field of each run of features, in
    the order of the feature axis (the channels), as `concat` stacks them and `chunk` takes them
    (a chunk of the channels sees what those channels see). `flat`: for a flattened vector, the
    field it came from, its shape and which of its elements the vector holds (a `chunk` of a
    flattened vector sees the positions its elements came from)."""

    __slots__ = ("segments", "flat", "_union")

    def __init__(self, segments, flat=None):
        if len(segments) == 1 and segments[0][0] > 0:
            # the common case: every channel sees the same
            self.segments, self.flat, self._union = tuple(segments), flat, segments[0][1]
            return
        runs: list[tuple[int, ReceptiveField]] = []
        for count, fields in segments:
            if count <= 0:
                continue
            if runs and runs[-1][1] == fields:
                runs[-1] = (runs[-1][0] + count, fields)
            else:
                runs.append((count, fields))
        self.segments, self.flat = tuple(runs), flat
        self._union = runs[0][1] if len(runs) == 1 else None if runs else ()

    @property
    def union(self) -> ReceptiveField:
        if self._union is None:
            self._union = union_fields(fields for _, fields in self.segments)
        return self._union

    @property
    def count(self) -> int:
        """The number of features."""
        return sum(count for count, _ in self.segments)

    @property
    def layout(self) -> ReceptiveField:
        """Some run's fields: every run holds the input axes on the same tensor axes."""
        return self.segments[0][1] if self.segments else ()

    def __len__(self) -> int:
        return len(self.layout)

    def __getitem__(self, index):
        return self.union[index]

    def __iter__(self):
        return iter(self.union)

    def __bool__(self) -> bool:
        return bool(self.layout)

    def __repr__(self) -> str:
        return f"Channels({self.segments!r})"

    def map(self, transform) -> "Channels":
        """Every run's fields transformed (each distinct one once)."""
        if len(self.segments) == 1:
            return Channels(((self.segments[0][0], transform(self.segments[0][1])),), self.flat)
        done: dict = {}
        segments = []
        for count, fields in self.segments:
            if fields not in done:
                done[fields] = transform(fields)
            segments.append((count, done[fields]))
        return Channels(segments, self.flat)

    def expanded(self) -> list[ReceptiveField]:
        return [fields for count, fields in self.segments for _ in range(count)]

    def read(self, taps: Taps, n_out: int) -> "Channels":
        """Along the feature axis, output feature `o` reads the input features `taps.taps(o)`."""
        if len(self.segments) == 1 or isinstance(taps, Everything) or max(n_out, self.count) > MAX_TRACKED:
            return Channels(((n_out, tuple(self)),))
        if isinstance(taps, Grouped):
            # one pass over the runs: each group of `cin` input channels makes `cout` outputs
            segments, group, seen = [], 0, []
            for count, fields in self.segments:
                while count:
                    take = min(count, taps.cin - group)
                    seen.append(fields)
                    group += take
                    count -= take
                    if group == taps.cin:
                        segments.append((taps.cout, union_fields(seen)))
                        group, seen = 0, []
            return Channels(segments)
        if sum(len(taps.taps(o)) for o in range(0, n_out, max(n_out // 8, 1))) * n_out > 8 * MAX_TRACKED:
            return Channels(((n_out, tuple(self)),))
        features = self.expanded()
        segments = []
        for o in range(n_out):
            read = [features[q] for q in clip(taps.taps(o), len(features))]
            segments.append((1, union_fields(read) if read else tuple(constant(None, f.n, f.size, f.axis) for f in self.layout)))
        return Channels(segments)

    def part(self, start: int, stop: int) -> list[tuple[int, ReceptiveField]]:
        """The runs of features `start` .. `stop` - 1."""
        runs, offset = [], 0
        for count, fields in self.segments:
            low, high = max(start, offset), min(stop, offset + count)
            if low < high:
                runs.append((high - low, fields))
            offset += count
        return runs

    def flattened(self, shape: tuple[int, ...], features: list[int]) -> "Channels":
        """After `flatten` (or a `reshape` that moves the positions) of a tensor of `shape`: one
        position, which sees them all, and the order its elements came in.

        >>> flat = start_field((4, 7), 3).flattened((3, 4, 7), [0])
        >>> chunk = flat.read_elements(ElementReads((84,), (4,), {0: Sliding(1, 1, -16)}))
        >>> flat[1].const, chunk[1].const
        ((0, 6), (2, 5))
        """
        if self.flat is not None or not any(f.axis is not None for f in self.layout):
            return self
        # past `MAX_TRACKED` elements, not followed (`elements` is None): it sees all
        gathered = tuple(f.gathered(keep_axis=False) for f in self)
        return Channels(((product(shape), gathered),), self.elements(shape, features))

    def elements(self, shape: tuple[int, ...], features: list[int]) -> "ElementNode | None":
        """This field as the root of a tensor followed element by element (None past
        `MAX_TRACKED` elements): its own node if it has one."""
        if self.flat is not None:
            return self.flat
        if product(shape) > MAX_TRACKED:
            return None
        # runs of channels on several feature axes are followed as one run
        source = self if len(self.segments) == 1 or features in ([0], [len(shape) - 1]) else Channels(((1, tuple(self)),))
        return ElementNode(shape, source=source, features=features)

    def read_elements(self, reads: "ElementReads") -> "Channels":
        """A layer on a tensor whose positions were rearranged: what it sees is what the elements
        it reads came from, followed back to the fields they were flattened from."""
        return Channels.of_elements(ElementNode(reads.shape_out, ((self.flat, reads),)), tuple(self))

    @staticmethod
    def of_elements(node: "ElementNode", fallback: ReceptiveField) -> "Channels":
        """The field of the tensor `node`, followed element by element (`fallback` where the
        elements read are too many to follow: it sees all)."""
        count = product(node.shape)
        masks = node.back((1 << count) - 1) if count <= MAX_TRACKED else None
        if masks is None:
            return Channels(((count, fallback),))
        node.full = masks
        return Channels(((count, elements_field(masks, fallback)),), node)


class ElementNode:
    """A tensor followed element by element, and which elements of the tensors before it (`edges`:
    each with the `ElementReads` that say which, None for the same) its elements read. A root
    (no edges) is a field whose positions were rearranged (`flatten`) or whose branches met laid
    out differently: `source` is that field, of `shape`, its channels on the tensor axes
    `features`."""

    __slots__ = ("shape", "edges", "full", "source", "features")

    def __init__(self, shape: tuple[int, ...], edges: tuple = (), source: "Channels | None" = None,
                 features: list[int] | None = None):
        self.shape, self.edges, self.source, self.features = tuple(shape), edges, source, features
        #: the roots' elements that all of this tensor's depend on, once known (a root's are its
        #: own, which `back` takes without it: a root holding itself would be a reference cycle,
        #: left to the garbage collector after every check)
        self.full = None

    def back(self, mask: int) -> "dict[ElementNode, int] | None":
        """The roots' elements that the elements in `mask` depend on, a mask per root, following
        every path once (a merge's branches meet again); None where too many to follow."""
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((parent, False) for parent, _ in node.edges)
        masks = {id(self): mask}
        found: dict[ElementNode, int] = {}
        for node in reversed(order):
            current = masks.pop(id(node), 0)
            if not current:
                continue
            if not node.edges:
                found[node] = found.get(node, 0) | current
                continue
            if node.full is not None and current == (1 << product(node.shape)) - 1:
                for root, full in node.full.items():
                    found[root] = found.get(root, 0) | full
                continue
            for parent, reads in node.edges:
                read = current if reads is None else reads.back(current)
                if read is None:
                    return None
                masks[id(parent)] = masks.get(id(parent), 0) | read
        return found


#: the most element reads followed through a layer on a rearranged tensor
MAX_ELEMENT_READS = 1 << 20


def set_bits(mask: int) -> list[int]:
    digits = bin(mask)[:1:-1]
    return [i for i, digit in enumerate(digits) if digit == "1"]


def mask_of(indices) -> int:
    indices = list(indices)
    if not indices:
        return 0
    buffer = bytearray(max(indices) // 8 + 1)
    for i in indices:
        buffer[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(buffer, "little")


class ElementReads:
    """Which elements (row-major) of a tensor of `shape_in` each element of a tensor of
    `shape_out` reads: along each axis, `reads[axis]` (missing: the same index), or the axes in
    `order` (a permutation: `channels_last`)."""

    def __init__(self, shape_in: tuple[int, ...], shape_out: tuple[int, ...], reads: dict, order=None):
        self.shape_in, self.shape_out, self.reads, self.order = tuple(shape_in), tuple(shape_out), reads, order

    def back(self, mask: int) -> int | None:
        """The elements read by those in `mask`, as a mask; None past `MAX_ELEMENT_READS`."""
        shape_in, shape_out = self.shape_in, self.shape_out
        if self.order is not None:
            out = []
            for e in set_bits(mask):
                coords = unravel(e, shape_out)
                moved = [0] * len(shape_in)
                for axis, source in enumerate(self.order):
                    moved[source] = coords[axis]
                out.append(ravel(moved, shape_in))
            return mask_of(out)
        if all(isinstance(self.reads.get(axis), Everything) for axis in range(len(shape_in))):
            return (1 << product(shape_in)) - 1 if mask else 0
        lists = []
        for axis, (n_in, n_out) in enumerate(zip(shape_in, shape_out)):
            taps = self.reads.get(axis)
            if taps is None:
                lists.append([range(c, c + 1) if c < n_in else range(0) for c in range(n_out)])
            elif isinstance(taps, Everything):
                lists.append([range(n_in)] * n_out)
            else:
                lists.append([clip(taps.taps(c), n_in) for c in range(n_out)])
        indices = set_bits(mask)
        width = 1
        for options in lists:
            width *= max((len(o) for o in options), default=0)
        if len(indices) * width > MAX_ELEMENT_READS:
            return None
        out = set()
        for e in indices:
            combos = [[]]
            for axis, c in enumerate(unravel(e, shape_out)):
                combos = [prefix + [q] for prefix in combos for q in lists[axis][c]]
            out.update(ravel(combo, shape_in) for combo in combos)
        return mask_of(out)


def unravel(index: int, shape: tuple[int, ...]) -> list[int]:
    coords = []
    for n in reversed(shape):
        index, c = divmod(index, n)
        coords.append(c)
    return coords[::-1]


def ravel(coords, shape: tuple[int, ...]) -> int:
    index = 0
    for c, n in zip(coords, shape):
        index = index * n + c
    return index


def elements_field(masks: "dict[ElementNode, int]", fallback: ReceptiveField) -> ReceptiveField:
    """What the elements in `masks` of the roots see, as one position (along each input axis of
    `fallback`'s sizes): the union of what each element saw where its root was laid out."""
    spans = [None] * len(fallback)
    for root, mask in masks.items():
        seen = root_spans(root.source, root.shape, root.features, mask)
        if len(seen) != len(spans):
            # roots over inputs of different ranks: nothing to follow the axes by
            return fallback
        spans = [join(a, b) for a, b in zip(spans, seen)]
    return tuple(constant(span, 1, f.size, None) for f, span in zip(fallback, spans))


def root_spans(source: "Channels", shape: tuple[int, ...], features: list[int], mask: int) -> list:
    """What the elements in `mask` of a root tensor of `shape` see, along each input axis: each,
    what the position it came from sees, in the run of features it came from."""
    spans = [None] * len(source)
    if mask == (1 << product(shape)) - 1:
        spans = [f.real_span() if f.axis is not None else f.real(0) for f in source]
    elif len(source.segments) == 1 or features == [0]:
        # stretches of the flat order: along each axis, the positions a stretch holds
        block = product(shape[1:]) if len(source.segments) > 1 else 0
        for run in re.finditer("1+", bin(mask)[:1:-1]):
            first, last, offset = run.start(), run.end() - 1, 0
            for count, fields in source.segments:
                low, high = (max(first, offset * block), min(last, (offset + count) * block - 1)) if block else (first, last)
                offset += count
                if low > high:
                    continue
                for a, f in enumerate(fields):
                    seen = f.real(0) if f.axis is None else f.real_span(*coordinates(low, high, product(shape[f.axis + 1:]), f.n))
                    spans[a] = join(spans[a], seen)
    else:
        # channels last, in several runs: element by element
        edges_of = edges(source)
        held: dict = {}
        for e in set_bits(mask):
            coords = unravel(e, shape)
            feature = ravel([coords[t] for t in features], tuple(shape[t] for t in features))
            run = min(bisect_right(edges_of, feature), len(source.segments) - 1)
            held.setdefault(run, set()).update((a, coords[f.axis] if f.axis is not None else 0)
                                               for a, f in enumerate(source.layout))
        for run, seen in held.items():
            fields = source.segments[run][1]
            for a, c in seen:
                spans[a] = join(spans[a], fields[a].real(c))
    return spans


def start_field(spatial: tuple[int, ...], channels: int = 1) -> Channels:
    """The input: each position sees itself."""
    if not spatial:
        return Channels(())
    return Channels(((channels, tuple(Field_(((0, 0),), 1, n, n, axis, lineage=Lineage("input"))
                                      for axis, n in enumerate(spatial, start=1))),))


def positions_read(fields: ReceptiveField, reads: dict[int, Taps], out: tuple[int, ...]) -> ReceptiveField:
    """Each input axis's field through what the layer reads along the tensor axis that holds it."""
    moved = []
    for f in fields:
        taps = reads.get(f.axis) if f.axis is not None else None
        if f.axis is None:
            moved.append(f)
        elif taps is None:
            moved.append(f if f.n == out[f.axis] else replace(f, n=out[f.axis]))
        else:
            moved.append(f.through(taps, out[f.axis]))
    return tuple(moved)


def layer_field(kind: LayerKind, params, shape: tuple[int, ...], out: tuple[int, ...], window: Window | None,
                rf: Channels) -> Channels:
    """The field after a layer of `kind` from `shape` to `out`, as its `field` declaration says.

    >>> from cnnspec.layers import REGISTRY
    >>> rf = start_field((32, 32), 3)
    >>> pooled = layer_field(REGISTRY["avgpool"], None, (3, 32, 32), (3, 1, 1), Window((Everything(), Everything())), rf)
    >>> describe_field(pooled), describe_field(layer_field(REGISTRY["flatten"], None, (3, 32, 32), (3072,), None, rf))
    ('whole', 'whole')
    """
    if not rf or kind.field == "pointwise":
        return rf
    rank = len(shape)
    held = {f.axis for f in rf.layout}
    features = [t for t in range(rank) if t not in held]
    if kind.field == "reshape":
        return rf.flattened(shape, features) if len(out) == 1 else reshaped(rf, shape, out, features)
    order = kind.axis_order(rank) if kind.field == "permute" else None
    taps = kind.feature_reads(params, shape, out) if kind.field == "reads" else {}
    if rf.flat is not None:
        # a tensor whose positions were rearranged: each layer reads some of its elements
        reads = dict(taps)
        if window is not None:
            reads.update(enumerate(window.axes, start=1))
        return rf.read_elements(ElementReads(shape, out, reads, order))
    if order is not None:
        return rf.map(lambda fields: tuple(f if f.axis is None else replace(f, axis=order.index(f.axis))
                                           for f in fields))
    reads: dict[int, Taps] = {}
    if window is not None:
        reads.update(enumerate(window.axes, start=1))
    if any(f.axis in taps for f in rf.layout) or len(rf.segments) > 1 and any(t in taps for t in features):
        reads.update(taps)
    if len(rf.segments) == 1:
        # every channel sees the same: only their number changes
        rf = Channels(((product(out[t] for t in features) or 1, rf.layout),))
    elif not reads:
        return rf
    elif any(t in reads for t in features):
        if len(features) == 1:
            rf = rf.read(reads[features[0]], out[features[0]])
        else:
            rf = Channels(((product(out[t] for t in features), tuple(rf)),))
    return rf.map(lambda fields: positions_read(fields, reads, out))


def reshaped(rf: Channels, shape: tuple[int, ...], out: tuple[int, ...], features: list[int]) -> Channels:
    """A `reshape` keeps the positions when it leaves the block of axes that holds them as it
    was (splitting or merging the channels before them); otherwise it rearranges them, and the
    result is one position that sees them all, as after `flatten`."""
    held = [f.axis for f in rf if f.axis is not None]
    if out == shape or not held:
        return rf
    first = min(held)
    kept = len(shape) - first
    if len(out) >= kept and tuple(out[len(out) - kept:]) == tuple(shape[first:]):
        moved = len(out) - len(shape)
        return rf.map(lambda fields: tuple(f if f.axis is None else replace(f, axis=f.axis + moved) for f in fields))
    return rf.flattened(shape, features)


def merge_fields(branches: list[tuple[Channels, tuple[int, ...]]], out: tuple[int, ...], op: str = "add",
                 crop: bool = False) -> Channels:
    """The field of a merge from each branch's field and shape: at each position and channel, the
    union of the branches' fields (`concat` stacks the branches' channels). A branch of one
    position broadcast over many (a global branch) is seen by every position; `concat crop`
    shifts each branch by its centre crop's offset.

    >>> from cnnspec.layers import REGISTRY
    >>> main = layer_field(REGISTRY["maxpool"], None, (3, 32, 32), (3, 32, 32), Window((Sliding(3, 1, 1),) * 2),
    ...                    start_field((32, 32), 3))
    >>> gate = layer_field(REGISTRY["avgpool"], None, (3, 32, 32), (3, 1, 1), Window((Everything(),) * 2), main)
    >>> merged = merge_fields([(main, (3, 32, 32)), (gate, (3, 1, 1))], (3, 32, 32), "mul")
    >>> describe_field(merged), merged[0].j, merged[0].at(5)
    ('whole', Fraction(1, 1), (4, 6))
    """
    present = [(rf, shape) for rf, shape in branches if rf]
    if not present:
        return Channels(())
    if any(rf.flat is not None for rf, _ in present):
        merged = merged_elements(present, out, op, crop)
        if merged is not None:
            return merged

    def adjust(fields, shape):
        moved = []
        for f in fields:
            axis = f.axis
            if axis is not None and crop and axis >= 1:
                f = f.through(Sliding(1, 1, -((shape[axis] - out[axis]) // 2)), out[axis])
            elif axis is not None and shape[axis] == 1 and out[axis] != 1:
                f = f.broadcast(out[axis])
            moved.append(f)
        return tuple(moved)

    adjusted = [Channels(rf.segments).map(lambda fields, shape=shape: adjust(fields, shape)) for rf, shape in present]
    layouts = {tuple(f.axis for f in rf.layout) for rf in adjusted}
    features = [t for t in range(len(out)) if t not in {f.axis for f in adjusted[0].layout}]
    stacked = len(layouts) > 1
    if stacked:
        # branches laid out differently (a permuted one): their positions meet element by element
        merged = merged_elements(present, out, op, crop)
        if merged is not None:
            return merged
    if stacked or len(features) != 1 or op == "concat" and features != [0]:
        # too many elements to follow (then one position that sees all: stacked); a concat along
        # an axis that holds positions (stacked there, united at the others'); channels on
        # several axes (every channel united)
        fields = tuple(Field_.union([rf[a] for rf in adjusted], out[f.axis] if f.axis is not None else 1,
                                    stacked=stacked or op == "concat" and f.axis == 0)
                       for a, f in enumerate(adjusted[0].layout))
        return Channels(((product(out[t] for t in features) or 1, fields),))
    if op == "concat":
        return Channels([segment for rf in adjusted for segment in rf.segments])
    count = out[features[0]]
    aligned = [rf if sum(c for c, _ in rf.segments) == count else Channels(((count, tuple(rf)),)) for rf in adjusted]
    cuts = sorted({0, count} | {edge for rf in aligned for edge in edges(rf)})
    return Channels([(high - low, union_fields(rf.part(low, high)[0][1] for rf in aligned))
                     for low, high in zip(cuts, cuts[1:])])


def merged_elements(branches: list[tuple[Channels, tuple[int, ...]]], out: tuple[int, ...], op: str,
                    crop: bool) -> Channels | None:
    """A merge followed element by element: each output element reads its branches' (the one its
    channel came from, for `concat`; broadcast over axes of one, cropped for `crop`), and a
    branch not yet followed so becomes a root, as laid out. None where one has too many elements
    to follow."""
    edges, offset = [], 0
    for rf, shape in branches:
        held = {f.axis for f in rf.layout}
        node = rf.elements(shape, [t for t in range(len(shape)) if t not in held])
        if node is None:
            return None
        reads = {}
        for axis in range(len(out)):
            if axis == 0 and op == "concat":
                reads[0] = Sliding(1, 1, offset)
            elif crop and axis >= 1:
                reads[axis] = Sliding(1, 1, -((shape[axis] - out[axis]) // 2))
            elif shape[axis] == 1 and out[axis] != 1:
                reads[axis] = Sliding(1, 0)
        offset += shape[0]
        edges.append((node, ElementReads(shape, out, reads) if reads or shape != out else None))
    fallback = tuple(Field_.union([rf[a] for rf, _ in branches], 1, stacked=True) for a in range(len(branches[0][0])))
    return Channels.of_elements(ElementNode(out, tuple(edges)), fallback)


def edges(rf: Channels) -> list[int]:
    offsets, total = [], 0
    for count, _ in rf.segments:
        total += count
        offsets.append(total)
    return offsets


def field_sizes(rf: ReceptiveField) -> list[int]:
    """The field's size along each input axis (the input's size where it is whole)."""
    return [f.size if f.whole else int(f.r) for f in rf]


def describe_axis(f: Field_) -> str:
    return "whole" if f.whole else str(int(f.r))


def describe_field(rf: ReceptiveField) -> str:
    """`195` for a square field, `7x11` otherwise, `whole` where every position sees the whole
    input through a global operation (`wholex7` where only along one axis); `-` for a flat input,
    which has no positions.

    >>> describe_field(start_field((7, 11))), describe_field(())
    ('1', '-')
    """
    parts = [describe_axis(f) for f in rf]
    if not parts:
        return "-"
    return parts[0] if len(set(parts)) == 1 else "x".join(parts)


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
