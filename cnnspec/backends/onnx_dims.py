"""Named dimensions for an export with symbolic spatial sizes (`to_onnx(dynamic="hw")`): every
tensor's shape in the file says how each of its sizes follows the input's.

A size that follows input axis `H` is a function of H over the sizes H may take, exact: the
input-size analysis (`cnnspec.analysis.sizes.traced_sizes`) runs the shape rules on parts of
the valid sizes on which every layer's output size is affine, `alpha*H + beta`. A `Dim` is such
a function, part by part; arithmetic on it (`Dim.map`) runs on `Size`s and splits parts as the
analysis does. Two dims are equal exactly when they agree on the first two sizes of every part
either is made of (the parts are nested or disjoint, and each dim is affine on each of its own),
and equal dims get one name, written as the function itself where it has a simple form:

- affine on every valid size: `H`, `H/4`, `(H-4)/2`, `2*H+1`;
- a floor division: `m*floor((H+c)/q)+b` on every valid size, shown as `ceil(H/q)` when c = q-1
  (a stride-2 conv with `same` padding halves H rounding up: `ceil(H/2)`);
- otherwise a name of its own, `H_1`, `H_2`, ... in order of appearance.

A size that follows two axes (a reshape that joins H and W) is taken as a product of sizes that
follow one axis each (`Product`), written `ceil(H/4)*ceil(W/4)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from cnnspec.analysis.sizes import Context, Fork, Piece, Size, size, traced_sizes


def part_value(value, n: int) -> int:
    """A part's size at n: an int, or a `Size` alpha*n + beta."""
    return value if isinstance(value, int) else int(value.alpha * n + value.beta)


def first_sizes(piece: Piece) -> tuple[int, ...]:
    """The first two sizes of a part (one for a single size)."""
    return (piece.lo,) if piece.single else (piece.lo, piece.lo + piece.step)


@dataclass(frozen=True, eq=False)
class Dim:
    """A size as a function of input axis `axis` (its position among the spatial axes), over the
    sizes that axis may take: `value` on each part, an int or a `Size` of that part."""

    axis: int
    parts: tuple[tuple[Piece, object], ...]

    def map(self, rule) -> "Dim | int":
        """`rule` applied to this size (an int or a `Size`, as the shape rules take), part by part;
        a part the rule needs split is split (`Fork`), as the analysis splits it."""
        out = []
        pending = list(reversed(self.parts))
        while pending:
            piece, value = pending.pop()
            context = Context(piece)
            n = value if isinstance(value, int) else size(context, value.alpha, value.beta)
            try:
                result = rule(n)
            except Fork as fork:
                pending += [(part, value) for part in reversed(fork.parts)]
                continue
            out.append((piece, result if isinstance(result, int) else Size(context, result.alpha, result.beta)))
        return made(self.axis, out)

    def __add__(self, other: int) -> "Dim | int":
        return self.map(lambda n: n + other)

    def __sub__(self, other: int) -> "Dim | int":
        return self.map(lambda n: n - other)

    def at(self, n: int) -> int:
        for piece, value in self.parts:
            if n in piece:
                return part_value(value, n)
        raise ValueError(f"{n} is not a valid size")


def made(axis: int, parts) -> "Dim | int":
    """A `Dim`, or the int it is where it is the same at every valid size."""
    values = {part_value(value, n) for piece, value in parts for n in first_sizes(piece)}
    if len(values) == 1 and all(isinstance(v, int) or v.alpha == 0 or p.single for p, v in parts):
        return values.pop()
    return Dim(axis, tuple(parts))


@dataclass(frozen=True, eq=False)
class Product:
    """`constant` times sizes that follow different axes."""

    factors: tuple[Dim, ...]
    constant: Fraction = Fraction(1)


def product(*factors) -> "Product | Dim | int":
    """The product of ints and sizes that follow different axes, as simple as it is."""
    constant, dims = 1, []
    for factor in factors:
        if isinstance(factor, int):
            constant *= factor
        elif isinstance(factor, Product):
            constant *= factor.constant
            dims += factor.factors
        else:
            dims.append(factor)
    if not dims or constant == 0:
        return int(constant)
    if len(dims) == 1 and Fraction(constant).denominator == 1:
        return dims[0].map(lambda n: n * int(constant))
    return Product(tuple(dims), Fraction(constant))


def layer_shapes(network) -> tuple[list, list[list]]:
    """The per-sample shape of the input and the output shape of every layer and merge, in the
    order they run, with each size that follows an input axis a `Dim` (a `Product` where it
    follows several)."""
    declared_input = network.input_shape[1:]
    per_axis = [traced_sizes(network, axis) for axis in range(len(declared_input))]
    input_shape = [network.input_shape[0]] + [
        Dim(axis, tuple((piece, size(Context(piece), Fraction(1), Fraction(0))) for piece, _ in traces))
        for axis, traces in enumerate(per_axis)]
    shapes = []
    for step, declared_shape in enumerate(per_axis[0][0][1]):
        shape = []
        for position in range(len(declared_shape)):
            following, declared = [], None
            for axis, traces in enumerate(per_axis):
                dim = made(axis, [(piece, trace[step][position]) for piece, trace in traces])
                if isinstance(dim, Dim):
                    following.append(dim)
                else:
                    declared = dim
            if len(following) > 1:
                shape.append(joint(following, declared_input))
            else:
                shape.append(following[0] if following else declared)
        shapes.append(shape)
    return input_shape, shapes


def joint(dims: list[Dim], declared_input) -> Product:
    """A size that follows several axes, each `Dim` found with the other axes as declared: along
    axis a it is f_a(x_a) times the other factors at their declared sizes (a reshape that joins
    axes multiplies them), so the size is the product of the `Dim`s over the declared size to
    the power k-1 for k axes. Each factor is divided by the gcd of its values first, which
    divides every value (of each part's first two, so of every one): `D*H*W`, not `15*D*30*H*...`."""
    declared = dims[0].at(declared_input[dims[0].axis])
    constant, factors = Fraction(1, declared ** (len(dims) - 1)), []
    for dim in dims:
        content = math.gcd(*(part_value(v, n) for p, v in dim.parts for n in first_sizes(p)))
        constant *= content
        factors.append(dim.map(lambda n, content=content: n // content) if content > 1 else dim)
    return Product(tuple(factors), constant)


class DimNames:
    """The names of an export's symbolic sizes: equal sizes one name, different ones different."""

    def __init__(self, axis_names: tuple[str, ...]):
        self.axis_names = axis_names
        self.dims: list = []

    def add(self, dim) -> None:
        self.dims.append(dim)

    def names(self) -> dict[int, str]:
        """Each added dim's name, by `id`."""
        tests: dict[int, set] = {}
        for dim in self._axis_dims():
            tests.setdefault(dim.axis, set()).update(n for piece, _ in dim.parts for n in first_sizes(piece))
        points = {axis: sorted(values) for axis, values in tests.items()}
        by_key: dict[tuple, str] = {}
        counters: dict[int, int] = {}
        names: dict[int, str] = {}

        keys: dict[tuple, tuple] = {}

        def dim_name(dim: Dim) -> str:
            # the values at every part's first sizes, computed once per list of parts
            signature = (dim.axis, tuple((p.lo, p.hi, p.step, part_value(v, p.lo), part_value(v, p.lo + p.step))
                                         for p, v in dim.parts))
            if signature not in keys:
                keys[signature] = (dim.axis, tuple(dim.at(n) for n in points[dim.axis]))
            key = keys[signature]
            if key not in by_key:
                name = formula(dim, self.axis_names[dim.axis])
                if name is None:
                    counters[dim.axis] = counters.get(dim.axis, 0) + 1
                    name = f"{self.axis_names[dim.axis]}_{counters[dim.axis]}"
                by_key[key] = name
            return by_key[key]

        for dim in self.dims:
            if isinstance(dim, Dim):
                names[id(dim)] = dim_name(dim)
            elif isinstance(dim, Product):
                names[id(dim)] = product_name([dim_name(f) for f in dim.factors], dim.constant)
        return names

    def _axis_dims(self):
        for dim in self.dims:
            if isinstance(dim, Dim):
                yield dim
            elif isinstance(dim, Product):
                yield from dim.factors


def product_name(names: list[str], constant: Fraction) -> str:
    """`ceil(H/4)*ceil(W/4)`, `(H-2)*(W-2)/4`."""
    factors = [f"({name})" if any(c in name for c in "+-") and not name.startswith("(") else name for name in names]
    if constant.numerator != 1:
        factors.insert(0, str(constant.numerator))
    text = "*".join(factors)
    return text if constant.denominator == 1 else f"{text}/{constant.denominator}"


def formula(dim: Dim, x: str) -> str | None:
    """The function as a formula of `x` where it is affine or a floor division on every valid size."""
    affine = common_affine(dim)
    if affine is not None:
        return affine_formula(*affine, x)
    return floor_formula(dim, x)


def common_affine(dim: Dim) -> tuple[Fraction, Fraction] | None:
    """(alpha, beta) where the dim is alpha*n + beta on every part."""
    multi = [(p, v) for p, v in dim.parts if not p.single]
    if not multi:
        return None
    first = multi[0][1]
    alpha, beta = (Fraction(0), Fraction(first)) if isinstance(first, int) else (first.alpha, first.beta)
    for piece, value in dim.parts:
        if any(part_value(value, n) != alpha * n + beta for n in first_sizes(piece)):
            return None
    return alpha, beta


def affine_formula(alpha: Fraction, beta: Fraction, x: str) -> str:
    """`(p*x+c)/q` as simple as it is: `x`, `x/4`, `(x-4)/2`, `2*x+1`."""
    q = math.lcm(alpha.denominator, beta.denominator)
    p, c = int(alpha * q), int(beta * q)
    head = x if p == 1 else f"-{x}" if p == -1 else f"{p}*{x}"
    numerator = head + (f"+{c}" if c > 0 else f"{c}" if c < 0 else "")
    if q == 1:
        return numerator
    return f"({numerator})/{q}" if c else f"{numerator}/{q}"


def floor_formula(dim: Dim, x: str) -> str | None:
    """`m*floor((x+c)/q)+b` (0 <= c < q) where it is the function on every valid size, the
    smallest such q (it is affine on a part only where q divides the part's step, so two sizes of
    each part decide it), `ceil(x/q)` (c = q-1) or `floor(x/q)` (c = 0) where either is."""
    steps = [p.step for p, _ in dim.parts if not p.single]
    for q in range(2, math.gcd(*steps) + 1):
        if math.gcd(*steps) % q:
            continue
        # ceil and floor first, the forms a reader knows
        for c in [q - 1, 0, *range(1, q - 1)]:
            piece, value = dim.parts[0]
            n0 = piece.lo
            slope = None
            for p, v in dim.parts:
                if not p.single:
                    alpha = Fraction(0) if isinstance(v, int) else v.alpha
                    slope = alpha * q
                    break
            if slope is None or slope.denominator != 1 or slope == 0:
                break
            m = int(slope)
            b = part_value(value, n0) - m * ((n0 + c) // q)
            if all(part_value(v, n) == m * ((n + c) // q) + b for p, v in dim.parts for n in first_sizes(p)):
                inner = (f"ceil({x}/{q})" if c == q - 1 else f"floor({x}/{q})" if c == 0
                         else f"floor(({x}+{c})/{q})")
                head = inner if m == 1 else f"-{inner}" if m == -1 else f"{m}*{inner}"
                return head + (f"+{b}" if b > 0 else f"{b}" if b < 0 else "")
    return None
