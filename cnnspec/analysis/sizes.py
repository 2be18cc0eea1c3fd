"""Which input sizes a network is valid for, axis by axis: the checker's own shape rules run on a
symbolic size.

One spatial axis of the input becomes a variable `n` (the other axes keep their declared sizes)
and every layer's shape rule (`LayerKind.infer_shape`), its parameter count and every merge rule
run on it. A size is an affine function `alpha*n + beta`, exact on the set of inputs under
consideration, a *piece*: the n from `lo` to `hi` in steps of `step`. Where a rule needs more
than that, the piece is split and the rule runs again on each part, where it is decided:

- a floor division whose result is not affine on the piece: with n = lo + step*k and the size
  A*k + c, the quotient floor((A*k + c) / S) is affine on each residue of k modulo
  F = S / gcd(A, S): k = F*j + t gives (A/gcd)*j + floor((A*t + c) / S);
- a comparison true on part of the piece: a size is monotone in n, so the part is a range,
  split at the threshold (an equality holds at one n at most, split around it).

Each part ends valid, or refused by the rule that refuses it (a shape rule's error, a merge whose
branches disagree, a layer whose weights would change shape: a flatten into a linear layer). The
union of the valid parts is exactly the set of valid sizes; past the largest bound of a part it
is periodic, which `AxisSizes` describes as "a multiple of m (plus r), at least lo", or as the
few sizes that work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from cnnspec.analysis.merges import broadcast
from cnnspec.codes import Code
from cnnspec.layers import REGISTRY, LayerError
from cnnspec.layers.base import describe_shape

#: the names of the spatial axes of 1D, 2D and 3D inputs
AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
#: parts the analysis of one axis may visit before it gives up (the zoo needs under 2,000)
MAX_STATES = 200_000
#: a bounded piece of at most this many sizes is split into single sizes when a rule needs a number
MAX_POINTS = 256


class Unsupported(Exception):
    """A rule the analysis cannot follow symbolically (a product of two varying sizes)."""


@dataclass(frozen=True)
class Piece:
    """The sizes lo, lo + step, lo + 2*step, ... up to hi (None: without end)."""

    lo: int
    hi: int | None
    step: int

    def __contains__(self, n: int) -> bool:
        return n >= self.lo and (self.hi is None or n <= self.hi) and (n - self.lo) % self.step == 0

    @property
    def single(self) -> bool:
        return self.hi == self.lo

    def residues(self, factor: int) -> list["Piece"]:
        """The piece as `factor` pieces of `factor` times its step."""
        step = self.step * factor
        parts = []
        for t in range(factor):
            lo = self.lo + self.step * t
            if self.hi is not None and lo > self.hi:
                break
            hi = None if self.hi is None else lo + step * ((self.hi - lo) // step)
            parts.append(Piece(lo, hi, step))
        return parts

    def below(self, n: int) -> "Piece | None":
        """The sizes under `n`."""
        if n <= self.lo:
            return None
        hi = self.lo + self.step * ((n - 1 - self.lo) // self.step)
        return Piece(self.lo, hi if self.hi is None else min(hi, self.hi), self.step)

    def from_(self, n: int) -> "Piece | None":
        """The sizes from `n` on."""
        lo = self.lo + self.step * max(0, -(-(n - self.lo) // self.step))
        if self.hi is not None and lo > self.hi:
            return None
        return Piece(lo, self.hi, self.step)

    def points(self) -> list[int]:
        return list(range(self.lo, self.hi + 1, self.step))

    def __str__(self) -> str:
        end = "..." if self.hi is None else str(self.hi)
        return f"{self.lo}, {self.lo + self.step}, ... {end}" if not self.single else str(self.lo)


class Fork(Exception):
    """The rule running needs the current piece split into `parts`: it is run again on each."""

    def __init__(self, parts: list[Piece]):
        super().__init__(f"split into {len(parts)}")
        self.parts = [p for p in parts if p is not None]


class Context:
    """The piece the rules currently run on."""

    def __init__(self, piece: Piece):
        self.piece = piece


def size(context: Context, alpha: Fraction, beta: Fraction):
    """alpha*n + beta: a plain int where it does not vary on the current piece."""
    piece = context.piece
    if alpha == 0 or piece.single:
        value = alpha * piece.lo + beta
        if value.denominator != 1:
            raise Unsupported("a size that is not a whole number")
        return int(value)
    return Size(context, alpha, beta)


def at_least_zero(x) -> bool:
    """x >= 0, deciding on the current piece or splitting it at the threshold."""
    if not isinstance(x, Size):
        return x >= 0
    piece, alpha, beta = x.context.piece, x.alpha, x.beta
    if alpha > 0:
        threshold = math.ceil(-beta / alpha)                 # true from here on
        below, above = piece.below(threshold), piece.from_(threshold)
        if below is None or above is None:
            return below is None
        raise Fork([below, above])
    threshold = math.floor(-beta / alpha) + 1                # false from here on
    below, above = piece.below(threshold), piece.from_(threshold)
    if below is None or above is None:
        return above is None
    raise Fork([below, above])


def is_zero(x) -> bool:
    """x == 0: a varying size is zero at one n at most, split out of the piece."""
    if not isinstance(x, Size):
        return x == 0
    piece = x.context.piece
    root = -x.beta / x.alpha
    if root.denominator != 1 or int(root) not in piece:
        return False
    n = int(root)
    if piece.single:
        return True
    raise Fork([piece.below(n), Piece(n, n, piece.step), piece.from_(n + 1)])


class Size:
    """A size that varies with the input: alpha*n + beta on the current piece, which the shape
    rules compute with as with an int (comparisons and floor divisions split the piece)."""

    __slots__ = ("context", "alpha", "beta")
    __hash__ = None  # not hashable: caches keyed by shapes compute afresh

    def __init__(self, context: Context, alpha: Fraction, beta: Fraction):
        self.context, self.alpha, self.beta = context, Fraction(alpha), Fraction(beta)

    def _make(self, alpha, beta):
        return size(self.context, alpha, beta)

    def __add__(self, other):
        if isinstance(other, Size):
            return self._make(self.alpha + other.alpha, self.beta + other.beta)
        if isinstance(other, int):
            return self._make(self.alpha, self.beta + other)
        return NotImplemented

    __radd__ = __add__

    def __neg__(self):
        return self._make(-self.alpha, -self.beta)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, Size):
            raise Unsupported("a product of two varying sizes")
        if isinstance(other, int):
            return self._make(self.alpha * other, self.beta * other)
        return NotImplemented

    __rmul__ = __mul__

    def __floordiv__(self, other):
        if isinstance(other, Size):
            raise Unsupported("a division by a varying size")
        if not isinstance(other, int):
            return NotImplemented
        if other < 0:
            return (-self) // -other
        piece = self.context.piece
        increment = self.alpha * piece.step          # the change from one size of the piece to the next
        first = self.alpha * piece.lo + self.beta
        if increment % other:
            raise Fork(piece.residues(other // math.gcd(int(increment), other)))
        alpha = self.alpha / other
        return self._make(alpha, (first // other) - alpha * piece.lo)

    def __rfloordiv__(self, other):
        raise Unsupported("a division by a varying size")

    def __mod__(self, other):
        return self - other * (self // other)

    def __rmod__(self, other):
        raise Unsupported("a remainder by a varying size")

    def __ge__(self, other):
        return at_least_zero(self - other)

    def __gt__(self, other):
        return at_least_zero(self - other - 1)

    def __le__(self, other):
        return at_least_zero(other - self)

    def __lt__(self, other):
        return at_least_zero(other - self - 1)

    def __eq__(self, other):
        if not isinstance(other, (int, Size)):
            return NotImplemented
        return is_zero(self - other)

    def __ne__(self, other):
        if not isinstance(other, (int, Size)):
            return NotImplemented
        return not is_zero(self - other)

    def __bool__(self):
        return self != 0

    def __index__(self):
        piece = self.context.piece
        if piece.single:
            return int(self.alpha * piece.lo + self.beta)
        if piece.hi is not None and len(range(piece.lo, piece.hi + 1, piece.step)) <= MAX_POINTS:
            raise Fork([Piece(n, n, piece.step) for n in piece.points()])
        raise Unsupported("a rule that needs the size as a number")

    __int__ = __index__

    def __format__(self, spec: str) -> str:
        # messages are written again at a number (`refusal_at`)
        return "n"

    def __repr__(self) -> str:
        return f"Size({self.alpha}*n + {self.beta})"

    def __str__(self) -> str:
        return "n"


# ---------------------------------------------------------------- running the rules


@dataclass(frozen=True)
class Refusal:
    """Why sizes are invalid: the layer or merge that refuses them, its rule's code and message
    (for symbolic sizes, a placeholder: `AxisSizes.refusal_at` reruns the rules at a number)."""

    where: object
    code: Code
    message: str
    #: what reaches a layer whose weights would change shape
    shape: tuple = ()


def program(items) -> list[tuple]:
    """The graph as a list of steps: layers, merges as open / one stash per branch / merge, and
    the reads and bindings of named values."""
    steps = []
    for item in items:
        if item.node == "seq":
            if item.source is not None:
                steps.append(("read", item.source))
            steps += program(item.items)
            if item.bind is not None:
                steps.append(("bind", item.bind))
        elif item.node == "layer":
            steps.append(("layer", item))
        else:
            steps.append(("open", None))
            for index, branch in enumerate(item.branches):
                steps += program(branch.items)
                steps.append(("stash", index))
            steps.append(("merge", item))
    return steps


class Refused(Exception):
    def __init__(self, refusal: Refusal):
        super().__init__(refusal.message)
        self.refusal = refusal


def run_layer(node, shape, values: dict):
    """A layer's shape rule on `shape`, and its weights unchanged (a linear layer after a
    flatten has as many inputs as the declared input gives it). A layer that takes a value's
    size (`upsample size=c1`) takes its size at this input."""
    kind = REGISTRY[node.kind]
    params = node.params
    if node.size_from is not None:
        params = params.model_copy(update={kind.size_from_value: tuple(values[node.size_from][1:])})
    try:
        out = kind.infer_shape(params, shape)
        state = (kind.count_params(params, shape), kind.count_buffers(params, shape))
    except LayerError as error:
        raise Refused(Refusal(node, error.code, error.message)) from None
    declared = (kind.count_params(node.params, node.in_shape), kind.count_buffers(node.params, node.in_shape))
    if state[0] != declared[0] or state[1] != declared[1]:
        raise Refused(Refusal(node, Code.SIZE_CANNOT_VARY, f"`{node.kind}` has weights for its declared input "
                                            f"{describe_shape(node.in_shape)}", shape=tuple(shape)))
    return tuple(out)


def run_merge(node, shape, outputs, residual: bool):
    """The shape rules of `residual`, `add`, `concat` (with `crop`) and `scale`, as the checker
    applies them."""
    where = "residual" if residual else {"add": "add", "concat": "concat", "mul": "scale"}[node.op]
    shown = ", ".join(describe_shape(s) for s in outputs)
    if node.op == "add":
        out = outputs[0]
        for other in outputs[1:]:
            out = broadcast(out, other) if out is not None else None
        if out is None or residual and out != outputs[0] and out != outputs[1]:
            code = Code.RESIDUAL_MISMATCH if residual else Code.ADD_MISMATCH
            raise Refused(Refusal(node, code, f"{where} branches disagree: {shown}"))
        return out
    if node.op == "mul":
        out = broadcast(shape, outputs[1])
        if out is None or out != shape:
            raise Refused(Refusal(node, Code.SCALE_MISMATCH, f"scale branch gives {describe_shape(outputs[1])}, which does not "
                                                f"broadcast over the input {describe_shape(shape)}"))
        return out
    if node.crop:
        spatial = tuple(min(s[i] for s in outputs) for i in range(1, len(outputs[0])))
    else:
        if any(s[1:] != outputs[0][1:] for s in outputs[1:]):
            raise Refused(Refusal(node, Code.CONCAT_MISMATCH, f"concat branches disagree: {shown}"))
        spatial = tuple(outputs[0][1:])
    return (sum(s[0] for s in outputs), *spatial)


@dataclass
class State:
    step: int
    piece: Piece
    shape: tuple
    stack: tuple = ()
    #: the shape of each named value bound so far, by key
    values: dict = field(default_factory=dict)
    #: the output shapes of the layers and merges run so far, the last first: (shape, rest) or ()
    trace: tuple = ()


def walk(steps, residuals: frozenset, shape, piece: Piece, context: Context,
         finals: list | None = None, traces: list | None = None) -> list[tuple[Piece, Refusal | None]]:
    """Every part of `piece` with the refusal that ends it (None: valid), running `steps` from
    `shape`, whose sizes are functions of n; the output shapes of the valid parts go to `finals`,
    and to `traces` each valid part with the output shape of every layer and merge on it, in the
    order they run."""
    pending = [State(0, piece, tuple(shape))]
    outcomes: list[tuple[Piece, Refusal | None]] = []
    visited = 0
    while pending:
        state = pending.pop()
        visited += 1
        if visited > MAX_STATES:
            raise Unsupported(f"more than {MAX_STATES:,} cases")
        context.piece = state.piece
        if state.step == len(steps):
            outcomes.append((state.piece, None))
            if finals is not None:
                finals.append(state.shape)
            if traces is not None:
                traces.append((state.piece, unrolled(state.trace)))
            continue
        op, item = steps[state.step]
        shape, stack, values = state.shape, state.stack, state.values
        try:
            if op == "layer":
                shape = run_layer(item, shape, values)
            elif op == "read":
                shape = values[item]
            elif op == "bind":
                values = {**values, item: shape}
            elif op == "open":
                stack = stack + (shape,)
            elif op == "stash":
                stack = stack + (shape,)
                shape = stack[-(item + 2)]
            else:
                count = len(item.branches)
                outputs, merge_input, stack = stack[-count:], stack[-count - 1], stack[:-count - 1]
                shape = run_merge(item, merge_input, outputs, item.id in residuals)
        except Fork as fork:
            pending += [State(state.step, part, state.shape, state.stack, state.values, state.trace)
                        for part in reversed(fork.parts)]
            continue
        except Refused as refused:
            outcomes.append((state.piece, refused.refusal))
            continue
        trace = (shape, state.trace) if op in ("layer", "merge") and traces is not None else state.trace
        pending.append(State(state.step + 1, state.piece, shape, stack, values, trace))
    return outcomes


def unrolled(trace: tuple) -> list:
    """A trace's shapes, the first first."""
    shapes = []
    while trace:
        shape, trace = trace
        shapes.append(shape)
    return shapes[::-1]


# ---------------------------------------------------------------- the valid sizes of one axis


@dataclass(frozen=True)
class Constraint:
    """The valid sizes of one axis: `multiple` * k + r for r in `residues`, from `at_least` on, and
    the `also` sizes below; or, when no large size works, exactly the `only` sizes."""

    multiple: int = 1
    residues: tuple[int, ...] = (0,)
    at_least: int = 1
    also: tuple[int, ...] = ()
    only: tuple[int, ...] = ()

    @property
    def fixed(self) -> bool:
        return bool(self.only)

    def __contains__(self, n: int) -> bool:
        if self.only:
            return n in self.only
        return n in self.also or n >= self.at_least and n % self.multiple in self.residues

    def describe(self, plural: bool = False) -> str:
        """`a multiple of 32, at least 32` (`multiples of 32, ...` with `plural`), `at least 188`,
        `fixed at 32`, `32 or 33`."""
        if self.only:
            return f"fixed at {self.only[0]}" if len(self.only) == 1 else f"one of {listed(self.only)}"
        if self.multiple == 1:
            text = f"at least {self.at_least}"
        else:
            head = f"multiples of {self.multiple}" if plural else f"a multiple of {self.multiple}"
            if self.residues != (0,):
                head += f" plus {listed(self.residues)}"
            text = f"{head}, at least {self.at_least}"
        if self.also:
            text += f" (or {listed(self.also)})"
        return text

    def as_dict(self) -> dict:
        if self.only:
            return {"only": list(self.only)}
        return {"multiple_of": self.multiple, "plus": list(self.residues), "at_least": self.at_least,
                **({"also": list(self.also)} if self.also else {})}


def listed(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


@dataclass
class AxisSizes:
    """The outcome of the analysis of one axis: its parts, valid or refused."""

    axis: int
    name: str
    declared: int
    outcomes: list[tuple[Piece, Refusal | None]]
    #: the positions of the output shape that change with this axis
    varying: frozenset = frozenset()
    constraint: Constraint = field(init=False)

    def __post_init__(self):
        self.constraint = summarise(self.outcomes)

    def refusal(self, n: int) -> Refusal | None:
        for piece, refusal in self.outcomes:
            if n in piece:
                return refusal
        raise ValueError(f"{n} is not a size the analysis covered")

    def valid(self, n: int) -> bool:
        return n >= 1 and self.refusal(n) is None

    def fixing_size(self) -> int | None:
        """When no large size is valid: a size past the declared one refused by the earliest layer or
        merge that refuses sizes without end (`refusal_at` words its rule's message there)."""
        if not self.constraint.fixed:
            return None
        endless = [(refusal.where.id, piece) for piece, refusal in self.outcomes if piece.hi is None]
        _, piece = min(endless, key=lambda pair: pair[0])
        return piece.from_(self.declared + 1).lo


def summarise(outcomes) -> Constraint:
    """The valid sizes as a `Constraint`: past every part's bound the parts repeat with the lcm of
    their steps; the smallest period of that pattern, and the sizes below where it starts."""
    endless = [piece for piece, _ in outcomes if piece.hi is None]
    period = math.lcm(*(piece.step for piece in endless))
    bound = max([piece.lo for piece in endless] + [piece.hi + 1 for piece, _ in outcomes if piece.hi is not None])
    valid = set()
    for piece, refusal in outcomes:
        if refusal is None:
            last = piece.hi if piece.hi is not None else bound + period - 1
            valid.update(range(piece.lo, last + 1, piece.step))
    pattern = {n % period for n in range(bound, bound + period) if n in valid}
    if not pattern:
        return Constraint(only=tuple(sorted(valid)))
    multiple = next(d for d in range(1, period + 1) if period % d == 0 and
                    all(((r + d) % period in pattern) for r in pattern))
    residues = tuple(sorted({r % multiple for r in pattern}))
    start = bound
    while start > 1 and ((start - 1) in valid) == ((start - 1) % multiple in residues):
        start -= 1
    at_least = next(n for n in range(start, start + multiple) if n % multiple in residues)
    return Constraint(multiple, residues, at_least, also=tuple(sorted(n for n in valid if n < start)))


def residual_merges(network) -> frozenset:
    """The ids of the merges written as `residual` (an add whose result must be one of its two
    branches' shapes), told from `add { }` by the keyword at their place."""
    ids = set()
    for item in merges(network.graph.body.items):
        if item.op == "add":
            line = network.sources.line(item.span.file, item.span.line) or ""
            if line[item.span.column - 1:].startswith("residual"):
                ids.add(item.id)
    return frozenset(ids)


def merges(items):
    for item in items:
        if item.node == "seq":
            yield from merges(item.items)
        elif item.node == "merge":
            yield item
            for branch in item.branches:
                yield from merges(branch.items)


def analyse_axis(network, axis: int, steps=None, residuals=None) -> AxisSizes:
    """The valid sizes of spatial axis `axis` (0 for the first) with the others as declared."""
    shape = network.input_shape
    steps = steps if steps is not None else program(network.graph.body.items)
    residuals = residuals if residuals is not None else residual_merges(network)
    context = Context(Piece(1, None, 1))
    symbolic = list(shape)
    symbolic[axis + 1] = Size(context, Fraction(1), Fraction(0))
    outputs: list = []
    outcomes = walk(steps, residuals, symbolic, context.piece, context, outputs)
    declared = network.output_shape
    varying = frozenset(i for out in outputs for i, d in enumerate(out) if isinstance(d, Size) or d != declared[i])
    return AxisSizes(axis, AXIS_NAMES[len(shape) - 1][axis], shape[axis + 1], outcomes, varying)


def refusal_at(network, axis: int, n: int, steps=None, residuals=None) -> Refusal | None:
    """The rules run at one size (axis `axis` at n), for the message they give there."""
    steps = steps if steps is not None else program(network.graph.body.items)
    residuals = residuals if residuals is not None else residual_merges(network)
    shape = list(network.input_shape)
    shape[axis + 1] = n
    context = Context(Piece(n, n, 1))
    (_, refusal), = walk(steps, residuals, shape, context.piece, context)
    return refusal


@dataclass
class InputSizes:
    """The valid sizes of every spatial axis of a network's input."""

    axes: list[AxisSizes]

    @property
    def fixed(self) -> list[AxisSizes]:
        return [axis for axis in self.axes if axis.constraint.fixed]

    def describe(self) -> str:
        """`H and W must be multiples of 32, at least 32`; axes with different constraints each."""
        groups: dict[Constraint, list[str]] = {}
        for axis in self.axes:
            groups.setdefault(axis.constraint, []).append(axis.name)
        parts = []
        for constraint, names in groups.items():
            plural = len(names) > 1
            who = listed(names).replace(" or ", " and ")
            if constraint.fixed:
                verb = ("are" if plural else "is") if len(constraint.only) == 1 else "must be"
            else:
                verb = "must be"
            parts.append(f"{who} {verb} {constraint.describe(plural)}")
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return {axis.name: axis.constraint.as_dict() for axis in self.axes}


def traced_sizes(network, axis: int) -> list[tuple[Piece, list[tuple]]]:
    """Each valid part of spatial axis `axis` (the others as declared) with the output shape of
    every layer and merge on it, in the order they run: sizes that vary are `Size`s of that part."""
    steps, residuals = program(network.graph.body.items), residual_merges(network)
    context = Context(Piece(1, None, 1))
    symbolic = list(network.input_shape)
    symbolic[axis + 1] = Size(context, Fraction(1), Fraction(0))
    traces: list = []
    walk(steps, residuals, symbolic, context.piece, context, traces=traces)
    return traces


def input_sizes(network) -> InputSizes:
    """The analysis of every spatial axis (none for a flat input); `Unsupported` for a network of
    several inputs, whose sizes would vary together."""
    if len(network.graph.inputs) > 1:
        raise Unsupported("the network has several inputs")
    steps, residuals = program(network.graph.body.items), residual_merges(network)
    rank = len(network.input_shape) - 1
    return InputSizes([analyse_axis(network, axis, steps, residuals) for axis in range(rank)])


def dynamic_sizes(network) -> InputSizes:
    """The analysis for an export whose spatial sizes are symbolic, or `SpecError` with E220 at
    each layer or merge that fixes an axis (one diagnostic naming every axis it fixes)."""
    from cnnspec.codes import Code
    from cnnspec.diagnostics import Diagnostic, SpecError

    try:
        analysis = input_sizes(network)
    except Unsupported as error:
        raise SpecError([Diagnostic(code=Code.SIZE_CANNOT_VARY, span=network.graph.body.items[0].span
                                    if network.graph.body.items else None,
                                    message=f"the input's sizes cannot be analysed: {error}",
                                    help="export with `--dynamic batch`")], network.sources) from None
    if not analysis.axes:
        raise SpecError([Diagnostic(code=Code.SIZE_CANNOT_VARY, message="the input is flat: it has no "
                                    f"spatial sizes to vary ({describe_shape(network.input_shape)})",
                                    help="export with `--dynamic batch`")], network.sources)
    fixing: dict[int, list] = {}
    for axis in analysis.fixed:
        n = axis.fixing_size()
        refusal = refusal_at(network, axis.axis, n)
        fixing.setdefault(refusal.where.id, []).append((axis, n, refusal))
    diagnostics = []
    for found in fixing.values():
        names = listed([axis.name for axis, _, _ in found]).replace(" or ", " and ")
        axis, n, refusal = found[0]
        where = refusal.where
        weights = refusal.code == Code.SIZE_CANNOT_VARY
        help = ("pool to a fixed size before `flatten` (`avgpool global`, or `avgpool adaptive` to the map it "
                "has now), or export with `--dynamic batch`") if weights else "export with `--dynamic batch`"
        got = f" it gets {describe_shape(refusal.shape)}" if weights else f": {refusal.message} ({refusal.code})"
        diagnostics.append(Diagnostic(
            code=Code.SIZE_CANNOT_VARY, span=where.span,
            message=f"the input's {names} cannot vary: "
                    + (refusal.message if weights else "the shape rules refuse every larger size"),
            label=f"valid only at {axis.name} = {listed(axis.constraint.only)}",
            notes=(f"at {axis.name} = {n}{got}",), help=help))
    if diagnostics:
        raise SpecError(diagnostics, network.sources)
    return analysis
