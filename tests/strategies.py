"""Hypothesis strategies for random valid specs, built as IR (`cnnspec.ir`), not as text.

A spec grows item by item from its input shape. Each layer's arguments are drawn from the
ranges its kind declares for every option (`LayerKind.ranges`), at the current shape, checked
with the registry's own shape rule, and written as IR with positional arguments, options or flag words
chosen at random. Structures (residual with and without projection, conditional shortcuts,
concat with and without cropping, add, scale, labelled groups, blocks with defaults, calls,
splices, repetition, when/else) wrap the same generator. `cnnspec.frontend.printer` turns
the IR into text for the checker.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnspec import ir
from cnnspec.layers import REGISTRY
from cnnspec.layers.base import LayerError
from cnnspec.layers.domains import Choice, Divisors, Ints, Nested, OneOf, Pairs, PerDim, Where, bound
from cnnspec.layers.formulas import product

SPAN = ir.Span(file="<generated>", line=1, column=1, end_line=1, end_column=2)
LABELS = ("stem", "body", "head", "mix", "downsample", "gate", "trunk", "tail")


# ---------------------------------------------------------------- IR helpers

def expr(value, top: bool = True):
    """A Python value as an IR expression (dimensions like `3x3` only as a whole argument)."""
    if isinstance(value, bool):
        return ir.Bool(value=value, span=SPAN)
    if isinstance(value, (int, float)):
        if value < 0:
            return ir.UnaryOp(op="-", operand=ir.Num(value=-value, span=SPAN), span=SPAN)
        return ir.Num(value=value, span=SPAN)
    if isinstance(value, str):
        return ir.Ref(name=value, span=SPAN)
    if isinstance(value, list):
        return ir.ListLit(items=tuple(expr(v, False) for v in value), span=SPAN)
    if isinstance(value, tuple):
        if top and len(value) >= 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            return ir.Dims(values=value, span=SPAN)
        return ir.TupleLit(items=tuple(expr(v, False) for v in value), span=SPAN)
    raise TypeError(value)


def ref(name: str, attr: str | None = None):
    return ir.Ref(name=name, attr=attr, span=SPAN)


def binop(op: str, left, right):
    return ir.BinOp(op=op, left=left, right=right, span=SPAN)


def group(statements) -> ir.Group:
    return ir.Group(body=tuple(statements), span=SPAN)


def statement(items, label: str | None = None) -> ir.ItemStatement:
    return ir.ItemStatement(label=label, label_span=SPAN if label else None, chain=tuple(items), span=SPAN)


def positional_ok(value) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value >= 0
    return isinstance(value, (tuple, bool)) and (not isinstance(value, tuple) or len(value) >= 2 and
                                                 all(isinstance(v, int) and v >= 0 for v in value))


def write_layer(draw, kind_name: str, fields: dict) -> ir.Layer:
    """IR for a layer, choosing for each field a positional, a flag word or an option."""
    kind = REGISTRY[kind_name]
    args, options = [], []
    remaining = dict(fields)
    for name in kind.positional:
        if name in remaining and positional_ok(remaining[name]) and draw(st.booleans()):
            args.append(expr(remaining.pop(name)))
        else:
            break
    for word, (field, value) in kind.flags.items():
        if field in remaining and remaining[field] == value and draw(st.booleans()):
            args.append(ref(word))
            del remaining[field]
    for name, value in remaining.items():
        options.append(ir.Option(key=name.rstrip("_"), value=expr(value), span=SPAN))
    return ir.Layer(kind=kind_name, args=tuple(args), options=tuple(options), span=SPAN, kind_span=SPAN)


def as_tuples(value):
    """Lists (a literal kernel) as the tuples the checker reads them into."""
    return tuple(as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def infer(kind_name: str, fields: dict, shape):
    """The output shape, or None when the layer does not apply (its own rule decides)."""
    kind = REGISTRY[kind_name]
    try:
        params = kind.Params.model_validate({"kind": kind_name, **{k: as_tuples(v) for k, v in fields.items()}},
                                            strict=False)
        return kind.infer_shape(params, tuple(shape))
    except (LayerError, ValueError):
        return None


# ---------------------------------------------------------------- layer arguments

def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def draw_value(draw, domain, where: Where):
    """A value from an option's declared domain (`cnnspec.layers.domains`)."""
    if isinstance(domain, Choice):
        return draw(st.sampled_from(domain.options(where)))
    if isinstance(domain, Ints):
        times = bound(domain.times, where)
        return times * draw(st.integers(bound(domain.low, where), bound(domain.high, where)))
    if isinstance(domain, Divisors):
        return draw(st.sampled_from(divisors(where.channels)))
    if isinstance(domain, PerDim):
        if where.rank > 1 and draw(st.booleans()):
            return tuple(draw_value(draw, domain.each, where) for _ in range(where.rank))
        return draw_value(draw, domain.each, where)
    if isinstance(domain, Pairs):
        return tuple((draw_value(draw, domain.each, where), draw_value(draw, domain.each, where))
                     for _ in range(where.rank))
    if isinstance(domain, OneOf):
        return draw_value(draw, draw(st.sampled_from(domain.domains)), where)
    if isinstance(domain, Nested):
        return nested(draw, domain.each, domain.shape(where), where)
    raise TypeError(f"no strategy for {domain!r}")


def nested(draw, each, shape, where: Where):
    if not shape:
        return draw_value(draw, each, where)
    return [nested(draw, each, shape[1:], where) for _ in range(shape[0])]


#: in `layer_fields(keep=...)`: the option is left out
LEAVE_OUT = object()


def layer_fields(draw, kind: str, shape, always: str | None = None, keep: dict | None = None) -> dict:
    """Random arguments for `kind` at `shape`, from the ranges the kind declares for its options,
    drawn in their declared order (possibly invalid: the caller checks). An option without a
    default (and the option named `always`) is always written; another with its domain's chance;
    each only where its condition holds. `keep` gives some options their values instead."""
    spec = REGISTRY[kind]
    fields: dict = {}
    for name, domain in spec.ranges.items():
        if keep and name in keep:
            if keep[name] is not LEAVE_OUT:
                fields[name] = keep[name]
            continue
        where = Where(tuple(shape), fields)
        if not domain.applies(where):
            continue
        required = name == always or spec.Params.model_fields[name].is_required()
        # Hypothesis leans to small numbers: the smallest draw leaves an option out
        if required or draw(st.integers(0, 99)) >= 100 - round(domain.chance * 100):
            fields[name] = draw_value(draw, domain, where)
    return fields


@st.composite
def layer_of(draw, kind: str, shape):
    """A list of (IR item, shape after it): the layer, or `identity` when no draw applies at `shape`
    (a conv on a flat vector)."""
    for _ in range(6):
        fields = layer_fields(draw, kind, shape)
        out = infer(kind, fields, shape)
        if out is not None and product(out) <= 4096:
            return [(write_layer(draw, kind, fields), out)]
    return [(write_layer(draw, "identity", {}), shape)]


# ---------------------------------------------------------------- structures

KINDS = sorted(REGISTRY)


class Builder:
    """Grows one spec; tracks labels per scope so none is used twice."""

    def __init__(self, draw):
        self.draw = draw
        self.blocks: list[ir.BlockDef] = []

    def label(self, used: set[str], always: bool = False) -> str | None:
        if not always and self.draw(st.integers(0, 3)) != 0:
            return None
        free = [name for name in LABELS if name not in used]
        if not free:
            return None
        name = self.draw(st.sampled_from(free))
        used.add(name)
        return name

    def layers(self, shape, count: int, kinds=KINDS):
        """Statements of `count` random layers from `shape`."""
        statements = []
        for _ in range(count):
            kind = self.draw(st.sampled_from(kinds))
            produced = self.draw(layer_of(kind, shape))
            statements += [statement([item]) for item, _ in produced]
            shape = produced[-1][1]
        return statements, shape

    def unit(self, shape, used: set[str], depth: int):
        """One top-level statement: a layer, a structure, a group, a block call or a repeat."""
        draw = self.draw
        options = ["layer"] * 4
        if depth < 2 and len(shape) > 1:
            options += ["residual", "projection", "concat", "crop", "add", "scale", "block", "when", "repeat"]
        if depth < 2:
            options.append("group")
        choice = draw(st.sampled_from(options))
        label = self.label(used) if choice in ("layer", "group", "block", "concat", "repeat") else None
        if choice == "layer":
            statements, shape = self.layers(shape, 1)
            if label is not None and len(statements) == 1:
                statements = [statement(statements[0].chain, label)]
            return statements, shape
        if choice == "group":
            # an unlabelled group is transparent: its labels share the enclosing scope
            body, shape = self.sequence(shape, draw(st.integers(1, 3)), depth + 1, used if label is None else None)
            return [statement([group(body)], label)], shape
        return getattr(self, choice)(shape, label, depth, used)

    def sequence(self, shape, count: int, depth: int, used: set[str] | None = None):
        used = set() if used is None else used
        statements = []
        for _ in range(count):
            more, shape = self.unit(shape, used, depth)
            statements += more
        return statements, shape

    def conv(self, out, kernel=1, stride=1, pad=0):
        fields = {"out": out, "kernel": kernel}
        if stride != 1:
            fields["stride"] = stride
        if pad:
            fields["pad"] = pad
        return write_layer(self.draw, "conv", fields)

    def preserving(self, shape, depth: int):
        """A few layers that keep the shape: activations, norms, a padded 3x3 conv."""
        kinds = ["relu", "bn", "sigmoid", "tanh", "identity", "hardswish", "silu", "dropout"]
        statements, shape2 = self.layers(shape, self.draw(st.integers(0, 2)), kinds)
        assert shape2 == shape
        if self.draw(st.booleans()) and all(n >= 1 for n in shape[1:]):
            statements.append(statement([self.conv(shape[0], 3, 1, 1)]))
        return statements

    def residual(self, shape, label, depth, used):
        # an empty main path is E205: it would add the input to itself
        main = self.preserving(shape, depth) or [statement([write_layer(self.draw, "identity", {})])]
        short = None
        form = self.draw(st.sampled_from(["none", "identity", "inactive"]))
        if form == "identity":
            short = ir.Shortcut(body=group([statement([write_layer(self.draw, "identity", {})])]), span=SPAN)
        elif form == "inactive":
            # `in` is the enclosing block's input (the network's at top level): compare numbers here
            condition = binop("!=", expr(shape[0]), expr(shape[0]))
            name = self.label(used, always=True)
            short = ir.Shortcut(label=name, label_span=SPAN if name else None, condition=condition,
                                body=group([statement([self.conv(shape[0] + 1)])]), span=SPAN)
        return [statement([ir.Residual(main=group(main), shortcut=short, span=SPAN)])], shape

    def projection(self, shape, label, depth, used):
        out = self.draw(st.integers(1, 6))
        stride = self.draw(st.integers(1, 2))
        main = [statement([self.conv(out, 3, stride, 1)])] + self.preserving((out, *out_sizes(shape, stride)), depth)
        condition = None
        if self.draw(st.booleans()):
            condition = binop("or", binop("!=", expr(stride), expr(1)), binop("!=", expr(shape[0]), expr(out)))
        body = [statement([self.conv(out, 1, stride)])]
        if self.draw(st.booleans()):
            body.append(statement([write_layer(self.draw, "bn", {})]))
        active = stride != 1 or shape[0] != out
        if not active and condition is None:
            condition = binop("!=", expr(shape[0]), expr(out))
        name = self.label(used)
        short = ir.Shortcut(label=name, label_span=SPAN if name else None, condition=condition,
                            body=group(body), span=SPAN)
        return [statement([ir.Residual(main=group(main), shortcut=short, span=SPAN)])], (out, *out_sizes(shape, stride))

    def concat(self, shape, label, depth, used):
        count = self.draw(st.integers(1, 3))
        branches, channels = [], 0
        for _ in range(count):
            out = self.draw(st.integers(1, 4))
            kernel = self.draw(st.sampled_from([1, 3]))
            chain = [self.conv(out, kernel, 1, kernel // 2)]
            if self.draw(st.booleans()):
                chain.append(write_layer(self.draw, "relu", {}))
            branches.append(statement(chain))
            channels += out
        node = ir.Concat(body=group(branches), span=SPAN)
        return [statement([node], label)], (channels, *shape[1:])

    def crop(self, shape, label, depth, used):
        if min(shape[1:]) < 3:
            return self.concat(shape, label, depth, used)
        branches = [statement([write_layer(self.draw, "identity", {})]),
                    statement([self.conv(self.draw(st.integers(1, 3)), 3)])]
        if self.draw(st.booleans()):
            branches.reverse()
        node = ir.Concat(flags=("crop",), body=group(branches), span=SPAN)
        channels = self.channels_of(node, shape)
        return [statement([node], label)], (channels, *(n - 2 for n in shape[1:]))

    def channels_of(self, node: ir.Concat, shape) -> int:
        total = 0
        for branch in node.body.body:
            layer = branch.chain[0]
            total += shape[0] if layer.kind == "identity" else out_of(layer)
        return total

    def add(self, shape, label, depth, used):
        branches = [statement([self.conv(shape[0], 1)])]
        if self.draw(st.booleans()):
            branches.append(statement([write_layer(self.draw, "identity", {})]))
        if self.draw(st.booleans()):
            # broadcasting: a per-channel vector added to every position
            branches.append(statement([write_layer(self.draw, "avgpool", {"global_": True})]))
        return [statement([ir.Add(body=group(branches), span=SPAN)])], shape

    def scale(self, shape, label, depth, used):
        hidden = self.draw(st.integers(1, 4))
        body = [statement([write_layer(self.draw, "avgpool", {"global_": True})]),
                statement([self.conv(hidden, 1)]), statement([write_layer(self.draw, "relu", {})]),
                statement([self.conv(shape[0], 1)]), statement([write_layer(self.draw, "sigmoid", {})])]
        if self.draw(st.booleans()):
            body = [statement([self.conv(1, 1)]), statement([write_layer(self.draw, "sigmoid", {})])]
            if shape[0] != 1:
                body = [statement([self.conv(shape[0], 1)]), statement([write_layer(self.draw, "sigmoid", {})])]
        return [statement([ir.Scale(body=group(body), span=SPAN)])], shape

    def block(self, shape, label, depth, used):
        """A parameterised block, defined once and called, spliced or repeated."""
        name = f"unit{len(self.blocks)}"
        params = (ir.BlockParam(name="c", span=SPAN),
                  ir.BlockParam(name="k", default=expr(3), span=SPAN))
        conv = ir.Layer(kind="conv", args=(ref("c"), ref("k")),
                        options=(ir.Option(key="pad", value=binop("//", ref("k"), expr(2)), span=SPAN),),
                        span=SPAN, kind_span=SPAN)
        # a splice puts the block's labels in the enclosing scope, where another splice would repeat them
        splice = label is None and self.draw(st.booleans())
        names = (None, None) if splice else ("conv", "norm")
        body = [statement([conv], names[0]), statement([write_layer(self.draw, "bn", {})], names[1]),
                statement([write_layer(self.draw, "relu", {})])]
        self.blocks.append(ir.BlockDef(name=name, params=params, body=group(body), span=SPAN, name_span=SPAN))
        c = self.draw(st.integers(1, 5))
        args = [expr(c)]
        options = []
        if self.draw(st.booleans()):
            options.append(ir.Option(key="k", value=expr(1), span=SPAN))
        call = ir.Call(name=name, args=tuple(args), options=tuple(options), span=SPAN, name_span=SPAN,
                       splice=splice)
        times = self.draw(st.integers(1, 2))
        item = call if times == 1 else ir.Repeat(item=call, count=expr(times), span=SPAN)
        return [statement([item], label)], (c, *shape[1:])

    def when(self, shape, label, depth, used):
        condition = binop(">", ref("in", "c"), expr(self.draw(st.integers(1, 5))))
        then = group(self.preserving(shape, depth) or [statement([write_layer(self.draw, "identity", {})])])
        otherwise = group([statement([write_layer(self.draw, "relu", {})])]) if self.draw(st.booleans()) else None
        return [statement([ir.When(condition=condition, then=then, otherwise=otherwise, span=SPAN)])], shape

    def repeat(self, shape, label, depth, used):
        body = self.preserving(shape, depth) or [statement([write_layer(self.draw, "relu", {})])]
        item = ir.Repeat(item=group(body), count=expr(self.draw(st.integers(1, 3))), span=SPAN)
        return [statement([item], label)], shape


def out_of(layer: ir.Layer) -> int:
    for arg in layer.args[:1]:
        return arg.value
    return next(o.value.value for o in layer.options if o.key == "out")


def out_sizes(shape, stride: int):
    return tuple((n - 1) // stride + 1 for n in shape[1:])


@st.composite
def input_shapes(draw):
    rank = draw(st.sampled_from([0, 1, 2, 2, 2, 3]))
    channels = draw(st.integers(1, 6))
    size = {0: st.integers(1, 1), 1: st.integers(4, 20), 2: st.integers(4, 12), 3: st.integers(3, 6)}[rank]
    if rank == 0:
        return (draw(st.integers(1, 32)),)
    return (channels, *(draw(size) for _ in range(rank)))


@st.composite
def specs(draw, kind: str | None = None):
    """A random valid spec as IR; with `kind`, one layer of that kind is guaranteed."""
    shape = input_shape = draw(input_shapes())
    builder = Builder(draw)
    used: set[str] = set()
    statements, shape = builder.sequence(shape, draw(st.integers(0, 3)), depth=0, used=used)
    if kind is not None:
        more, shape = builder.layers(shape, 1, [kind])
        statements += more
        tail, shape = builder.sequence(shape, draw(st.integers(0, 2)), depth=0, used=used)
        statements += tail
    head = [ir.NetworkDecl(name="generated", span=SPAN),
            ir.InputDecl(name="x", dims=input_shape, span=SPAN, dims_span=SPAN)]
    return ir.SpecFile(path="<generated>", statements=tuple(head + builder.blocks + statements)), shape


def run_examples(kind: str | None, examples: int, check) -> int:
    """Call `check(spec_ir, output_shape, index)` on `examples` generated specs (with a layer of
    `kind` in each, if given); the number of checks that passed. The same examples every run
    (derandomized, no example database), as `run_dags` draws them, so a CI run that fails does so again."""
    passed: list[int] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(pair=specs(kind))
    def run(pair):
        check(*pair, len(passed))
        passed.append(1)

    run()
    return len(passed)


# ---------------------------------------------------------------- DAGs: several live values

def per_dim_value(sizes):
    """A per-dimension argument: one integer when every dimension takes it (`2`, not `(2,)`)."""
    return sizes[0] if len(set(sizes)) == 1 else tuple(sizes)


def one_a_line(layers) -> tuple:
    """Layers as statements, one a line."""
    return tuple(statement([layer]) for layer in layers)


#: what a plain layer (`DagBuilder.plain`) keeps the shape with
KEEPING = ("relu", "bn", "sigmoid", "tanh", "identity")


def plain_shape(op: tuple, shape):
    """The shape after a plain layer, by its arithmetic, or None where it does not apply:
    `("conv", out, k, s)` (k // 2 padding) gives `(n - 1) // s + 1`, `("maxpool",)` (2x2)
    `n // 2`, `("avgpool",)` (3x3, stride 1, padding 1) `n`, `("upsample",)` (by 2) `2n`,
    `("keep", kind)` the shape; `("slice", start, end)` takes channels start to end - 1 (of
    those there are), `("split", sizes, index)` the piece `index` of `torch.split(x, sizes)`
    (`sizes` a list summing to the channels, or one size: pieces of it, the last smaller)."""
    sizes = shape[1:]
    if op[0] == "slice":
        return (op[2] - op[1], *sizes) if op[2] <= shape[0] else None
    if op[0] == "split":
        if isinstance(op[1], list):
            return (op[1][op[2]], *sizes) if sum(op[1]) == shape[0] else None
        first = op[1] * op[2]
        return (min(op[1], shape[0] - first), *sizes) if first < shape[0] else None
    if op[0] == "conv":
        return (op[1], *((n - 1) // op[3] + 1 for n in sizes))
    if op[0] == "maxpool":
        return (shape[0], *(n // 2 for n in sizes)) if min(sizes) >= 2 else None
    if op[0] == "avgpool":
        # PyTorch's 3D pooling needs the unpadded input to hold the kernel
        return tuple(shape) if min(sizes) >= 3 else None
    if op[0] == "upsample":
        return (shape[0], *(2 * n for n in sizes))
    return tuple(shape)


def plain_shapes(ops, shape):
    """The shape after plain layers `ops`, or None where one does not apply."""
    for op in ops:
        shape = plain_shape(op, shape) if shape is not None else None
    return shape


@dataclass
class DagNode:
    """One value of a drawn DAG: an input (no `reads`); the path of statements that computes it
    from the value it reads first (`reads[0]`), after an upsampling to the spatial size of the
    value `resize_to` (one of `reads`) with `resize` options, where there is one; or a merge
    (`op`: add, scale, concat) of the values it reads. Its shape is found by the arithmetic of the
    layers drawn (not by the checker)."""

    reads: tuple[int, ...]
    shape: tuple[int, ...]
    statements: tuple = ()
    op: str | None = None
    flags: tuple[str, ...] = ()
    resize_to: int | None = None
    resize: dict | None = None
    #: values kept wherever this one is, though it does not read them (the module a `use` applies,
    #: the other value of a block call returning two)
    after: tuple[int, ...] = ()
    #: `(r, s) = pairN(p, q)`: on the first of the two values the call returns, the block's name
    #: (the second value has `returned_with`, the first's index)
    call: str | None = None
    returned_with: int | None = None


@dataclass
class SharedModule:
    """A labelled group of plain layers that `use LABEL` may apply again to another value of its
    input channels and rank: its output shape there is `plain_shapes(ops, shape)`."""

    label: str
    channels: int
    ops: tuple
    node: int


class DagBuilder(Builder):
    """Grows a spec as a DAG of values (the inputs first): paths from any earlier value, merges of
    two or three values whose shapes are made to agree (by strided convs, upsamplings, adaptive
    pools, or a resize to another value's size), gates computed from one value and multiplied into
    another, labelled modules applied again to other values (`use`), two values through a block
    that returns two (`exchange`); a path that only a merge reads is written in it as a chain
    (`inlined`); then one to three named
    outputs, and the values none of them needs dropped (inputs after the first too), so that every
    value left is read."""

    def __init__(self, draw, input_shapes):
        super().__init__(draw)
        self.nodes = [DagNode(reads=(), shape=tuple(shape)) for shape in input_shapes]
        self.inputs = len(input_shapes)
        self.used: set[str] = set()
        self.rank = len(input_shapes[0])
        self.shared: list[SharedModule] = []

    # ------------------------------------------------------------ drawing

    def add_node(self, node: DagNode) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def mergeable(self) -> list[int]:
        """The values a merge may join: feature maps of the first input's rank."""
        return [i for i, n in enumerate(self.nodes) if len(n.shape) == self.rank]

    def pick(self, among: list[int]) -> int:
        # the latest values first: Hypothesis leans to the first of a list
        return self.draw(st.sampled_from(list(reversed(among))))

    def plain_op(self, shape, channel_ops: bool = True) -> tuple:
        """A plain layer that applies at `shape` (see `plain_shape`); a slice or a split only
        with `channel_ops`."""
        draw = self.draw
        options = ["conv", "keep", "maxpool", "avgpool"]
        if product(shape) * 2 ** (len(shape) - 1) <= 2048:
            options.append("upsample")
        options = [o for o in options if plain_shape((o, 1, 1, 1), shape) is not None]
        if shape[0] > 1 and channel_ops:
            options += ["slice", "split"]
        choice = draw(st.sampled_from(options))
        if choice == "slice":
            start = draw(st.integers(0, shape[0] - 1))
            return ("slice", start, draw(st.integers(start + 1, shape[0])))
        if choice == "split":
            if draw(st.booleans()):
                size = draw(st.integers(1, shape[0] - 1))
                return ("split", size, draw(st.integers(0, -(-shape[0] // size) - 1)))
            cuts = sorted(draw(st.sets(st.integers(1, shape[0] - 1), min_size=1, max_size=2)))
            pieces = [b - a for a, b in zip([0, *cuts], [*cuts, shape[0]])]
            return ("split", pieces, draw(st.integers(0, len(pieces) - 1)))
        if choice == "conv":
            return ("conv", draw(st.integers(1, 6)), draw(st.sampled_from([1, 3])), draw(st.integers(1, 2)))
        if choice == "keep":
            return ("keep", draw(st.sampled_from(KEEPING)))
        return (choice,)

    def plain_layer(self, op: tuple, channels: int) -> ir.Layer:
        """The IR of a plain layer (see `plain_shape`) on a map of `channels`, written in a drawn
        form (a slice's indices from the start or from the end, its end left out at the last)."""
        if op[0] == "conv":
            return self.conv(op[1], op[2], op[3], op[2] // 2)
        if op[0] == "slice":
            _, start, end = op
            if self.draw(st.booleans()):
                start = start - channels  # Python's negative index, the same channel
            fields = {"start": start}
            if end < channels:
                fields["end"] = end - channels if self.draw(st.booleans()) else end
            elif self.draw(st.booleans()):
                fields["end"] = end  # else left out: to the last channel
            return write_layer(self.draw, "slice", fields)
        if op[0] == "split":
            return write_layer(self.draw, "split", {"sizes": op[1], "index": op[2]})
        fields = {"maxpool": {"kernel": 2}, "avgpool": {"kernel": 3, "stride": 1, "pad": 1},
                  "upsample": {"scale": 2}}.get(op[0], {})
        return write_layer(self.draw, op[1] if op[0] == "keep" else op[0], fields)

    def plain(self, shape):
        """One plain layer at `shape` and the shape after it."""
        op = self.plain_op(shape)
        return self.plain_layer(op, shape[0]), plain_shape(op, shape)

    def path(self, shape):
        """Statements from a value of `shape`: maybe one unit of the spine's generator (a layer of
        any kind, a structure, a block call), then one or two plain layers while the map is
        still spatial, so that the statement binding the value ends with a layer."""
        statements = []
        if self.draw(st.integers(0, 2)) == 0:
            statements, shape = self.unit(shape, self.used, depth=1)
        for _ in range(self.draw(st.integers(1, 2))):
            if len(shape) < 2:
                layer, shape = write_layer(self.draw, "relu", {}), shape
            else:
                layer, shape = self.plain(shape)
            statements.append(statement([layer], self.label(self.used)))
        return statements, tuple(shape)

    def module(self, source: int) -> None:
        """A labelled group of one to three plain layers from value `source`, which `use` may
        apply again (`SharedModule`)."""
        label = self.label(self.used, always=True)
        shape = self.nodes[source].shape
        if label is None or len(shape) < 2:
            return self.grow_path(source)
        ops, layers = [], []
        for _ in range(self.draw(st.integers(1, 3))):
            at = plain_shapes(ops, shape)
            # not a slice or a split: an expression in PyTorch's forward, with no module, which
            # the oracle records by its path once however many times `use` applies it
            ops.append(self.plain_op(at, channel_ops=False))
            layers.append(self.plain_layer(ops[-1], at[0]))
        body = group(list(one_a_line(layers)))
        node = self.add_node(DagNode((source,), plain_shapes(ops, shape), (statement([body], label),)))
        self.shared.append(SharedModule(label, shape[0], tuple(ops), node))

    def reuse(self) -> bool:
        """`use LABEL` of a shared module on another value it fits (the same channels, a shape
        where each of its layers applies), once or, where it keeps the shape, twice; False where
        none fits."""
        fits = [(m, i) for m in self.shared for i in self.mergeable()
                if self.nodes[i].shape[0] == m.channels and plain_shapes(m.ops, self.nodes[i].shape) is not None]
        if not fits:
            return False
        shared, source = self.draw(st.sampled_from(fits))
        shape = self.nodes[source].shape
        out = plain_shapes(shared.ops, shape)
        item = ir.Use(label=shared.label, label_span=SPAN, span=SPAN)
        if out == shape and self.draw(st.booleans()):
            item = ir.Repeat(item=item, count=expr(2), span=SPAN)
        self.add_node(DagNode((source,), out, (statement([item]),), after=(shared.node,)))
        return True

    def resized(self, source: int, target, like: int | None = None) -> int:
        """A path from value `source` to a new value of shape `target` (channels and spatial
        sizes), by the arithmetic of each way: a conv at the same size, a strided 3x3 conv
        (`(n - 1) // s + 1`), an upsampling by an integer factor, an adaptive average pool to a
        smaller size, an upsampling to the size, or to the size of the value `like` (which has
        it); then a 1x1 conv to the channels."""
        draw = self.draw
        sizes, wanted = self.nodes[source].shape[1:], tuple(target[1:])
        channels = target[0]
        if sizes == wanted:
            kernel = draw(st.sampled_from([1, 3]))
            return self.add_node(DagNode((source,), tuple(target), (statement([self.conv(channels, kernel, 1, kernel // 2)]),)))
        if like is not None and draw(st.integers(0, 2)) < 2:
            resize = {}
            if self.rank == 3 and draw(st.booleans()):
                resize = {"mode": "bilinear", "align_corners": draw(st.booleans())}
            return self.add_node(DagNode((source, like), tuple(target), (statement([self.conv(channels, 1)]),),
                                         resize_to=like, resize=resize))
        layers = []
        strides = [s for s in (2, 3, 4) if all((n - 1) // s + 1 == m for n, m in zip(sizes, wanted))]
        factors = [f for f in (2, 3) if all(n * f == m for n, m in zip(sizes, wanted))]
        if strides:
            layers.append(self.conv(channels, 3, strides[0], 1))
        else:
            if factors:
                fields = {"scale": factors[0]}
                if self.rank == 3 and draw(st.booleans()):
                    fields.update(mode="bilinear", align_corners=draw(st.booleans()))
            elif all(m <= n for n, m in zip(sizes, wanted)) and draw(st.booleans()):
                fields = None
                layers.append(write_layer(draw, "avgpool", {"adaptive": True, "kernel": per_dim_value(wanted)}))
            else:
                fields = {"size": per_dim_value(wanted)}
            if fields is not None:
                layers.append(write_layer(draw, "upsample", fields))
            layers.append(self.conv(channels, 1))
        return self.add_node(DagNode((source,), tuple(target), one_a_line(layers)))

    def partner(self, first: int, same_channels: bool, same_sizes: bool = True) -> int:
        """A value to join with value `first`: an existing one that fits, or a path to one from
        any feature map (its channels drawn when they need not agree)."""
        target = self.nodes[first].shape

        def fits(shape):
            return (not same_channels or shape[0] == target[0]) and (not same_sizes or shape[1:] == target[1:])
        existing = [i for i in self.mergeable() if fits(self.nodes[i].shape)]
        if existing and self.draw(st.booleans()):
            return self.pick(existing)
        channels = target[0] if same_channels else self.draw(st.integers(1, 6))
        sizes, like = target[1:], first
        if not same_sizes:
            sizes = tuple(max(1, n + self.draw(st.integers(-2, 2))) for n in target[1:])
            like = first if sizes == target[1:] else None
        return self.resized(self.pick(self.mergeable()), (channels, *sizes), like)

    def gate(self, target) -> int:
        """A gate for a map of shape `target`, computed from another value: per channel
        (`avgpool global, conv C 1x1, sigmoid`, C x 1 x 1, squeeze-and-excitation) or per
        position (`conv 1 1x1, sigmoid` on a map of the same size, 1 x H x W)."""
        draw = self.draw
        source = self.pick(self.mergeable())
        shape = self.nodes[source].shape
        if shape[1:] == target[1:] and draw(st.booleans()):
            layers = [self.conv(1, 1), write_layer(draw, "sigmoid", {})]
            return self.add_node(DagNode((source,), (1, *target[1:]), one_a_line(layers)))
        layers = [write_layer(draw, "avgpool", {"global_": True})]
        if draw(st.booleans()):
            layers += [self.conv(draw(st.integers(1, 4)), 1), write_layer(draw, "relu", {})]
        layers += [self.conv(target[0], 1), write_layer(draw, "sigmoid", {})]
        ones = (1,) * (len(target) - 1)
        return self.add_node(DagNode((source,), (target[0], *ones), one_a_line(layers)))

    def merge(self) -> None:
        """Two or three values joined: summed (a per-channel vector broadcast over a map among
        them, sometimes), multiplied by a gate or by another map, or concatenated, with or
        without cropping to the smallest."""
        draw = self.draw
        first = self.pick(self.mergeable())
        shape = self.nodes[first].shape
        op = draw(st.sampled_from(["scale", "add", "concat", "crop"]))
        count = draw(st.integers(2, 3))
        if op == "add":
            others = [self.partner(first, True) for _ in range(count - 1)]
            if draw(st.integers(0, 3)) == 0:
                vector = self.add_node(DagNode((first,), (shape[0], *(1,) * (len(shape) - 1)),
                                               (statement([write_layer(draw, "avgpool", {"global_": True})]),)))
                others.append(vector)
            out = shape
        elif op == "scale":
            others = [self.gate(shape) if draw(st.integers(0, 2)) else self.partner(first, True)]
            if count == 3:
                others.append(self.gate(shape))
            out = shape
        else:
            crop = op == "crop"
            others = [self.partner(first, False, same_sizes=not crop) for _ in range(count - 1)]
            shapes = [shape] + [self.nodes[i].shape for i in others]
            out = (sum(s[0] for s in shapes), *(min(s[i] for s in shapes) for i in range(1, len(shape))))
        operands = [first, *others]
        if op in ("add", "scale") and draw(st.booleans()):
            operands.reverse()  # broadcasting is symmetric: the gate may come first
        flags = ("crop",) if op == "crop" else ()
        self.add_node(DagNode(tuple(operands), tuple(out), op="concat" if op == "crop" else op, flags=flags))

    def exchange(self) -> bool:
        """Two values through a block over values, `(r, s) = pairN(p, q)`, whose body draws a path
        from each of its value parameters and returns both; False where fewer than two values may."""
        among = self.mergeable()
        if len(among) < 2 or among[-1] != len(self.nodes) - 1:
            return False
        # the last value drawn goes in, so that what the outputs keep stays kept
        first = among[-1]
        second = self.pick([i for i in among if i != first])
        # named by the values drawn so far: the paths may draw blocks of their own
        tag = len(self.nodes)
        name = f"pair{tag}"
        body, shapes = [], []
        for value, param, returned in ((first, "p", f"r{tag}"), (second, "q", f"s{tag}")):
            statements, shape = self.path(self.nodes[value].shape)
            statements[0] = statements[0].model_copy(update={"source": ir.ValueName(name=param, span=SPAN)})
            statements[-1] = statements[-1].model_copy(update={"binding": ir.ValueName(name=returned, span=SPAN)})
            body += statements
            shapes.append(shape)
        returns = tuple(ir.ValueName(name=f"{r}{tag}", span=SPAN) for r in "rs")
        params = tuple(ir.BlockParam(name=p, span=SPAN) for p in "pq")
        self.blocks.append(ir.BlockDef(name=name, params=params, returns=returns, body=group(body), span=SPAN,
                                       name_span=SPAN))
        index = len(self.nodes)
        self.add_node(DagNode((first, second), shapes[0], call=name, after=(index + 1,)))
        self.add_node(DagNode((second,), shapes[1], after=(index,), returned_with=index))
        return True

    def grow_path(self, source: int) -> None:
        statements, shape = self.path(self.nodes[source].shape)
        self.add_node(DagNode((source,), shape, tuple(statements)))

    def grow(self, steps: int) -> None:
        for _ in range(steps):
            step = self.draw(st.sampled_from(["merge", "path", "merge", "module", "use"]))
            merges = all(n > 0 for n in self.nodes[-1].shape) and len(self.mergeable()) > 0
            if step == "merge" and merges and len(self.nodes) > 1:
                self.merge()
            elif step == "use" and self.reuse():
                pass
            elif step == "module" and self.mergeable():
                self.module(self.pick(self.mergeable()))
            else:
                self.grow_path(self.pick(list(range(len(self.nodes)))))
        # decided by the DAG drawn rather than by a draw of its own, so that the DAGs drawn so far
        # (and the constructs the tests count on seeing) stay as they were
        if len(self.nodes) % 2 == 1 and all(n > 0 for n in self.nodes[-1].shape):
            self.exchange()

    # ------------------------------------------------------------ outputs and text

    def outputs(self) -> list[int]:
        """One to three values the network returns, in a drawn order: the last always, the others
        among the values nothing reads first (so that fewer are dropped), then any."""
        count = self.draw(st.integers(1, 3))
        chosen = [len(self.nodes) - 1]
        read = {i for node in self.nodes for i in node.reads}
        others = [i for i in range(len(self.nodes) - 1) if i not in read]
        others += [i for i in range(len(self.nodes) - 1) if i in read]
        while len(chosen) < count and others:
            chosen.append(others.pop(self.draw(st.integers(0, len(others) - 1))))
        return self.draw(st.permutations(chosen))

    def needed(self, outputs) -> list[int]:
        """The values the outputs read, directly or not, in order (the first input always)."""
        keep, stack = {0}, list(outputs)
        while stack:
            i = stack.pop()
            if i not in keep:
                keep.add(i)
                stack.extend(self.nodes[i].reads + self.nodes[i].after)
        return sorted(keep)

    def inlined(self, kept, readers, outputs, names) -> set[int]:
        """The paths written in place, as a chain in the merge that alone reads them
        (`add(v1, v0 -> conv 3 1x1, relu)`): decided by the DAG drawn, not by a draw, so that the
        DAGs stay as they were drawn. A path of unlabelled statements from a named value, read once,
        by a merge, and by nothing else; from the merge's last operand back, as a chain runs on to
        the `)`."""
        nodes = self.nodes

        def plain_path(i):
            node = nodes[i]
            return (i >= self.inputs and node.op is None and node.call is None and node.returned_with is None
                    and node.statements and i not in outputs and len(readers[i]) == 1 and node.reads[0] in names
                    and all(st_.label is None and st_.binding is None for st_ in node.statements)
                    and not any(i in other.after for other in nodes))

        found = set()
        for j in kept:
            if nodes[j].op is None:
                continue
            for i in reversed(nodes[j].reads):
                if not plain_path(i) or nodes[j].reads.count(i) != 1 or readers[i] != [j]:
                    break
                found.add(i)
        return found

    def render(self, input_names, outputs) -> tuple[list, list, dict]:
        """The input declarations and statements of the kept values, each value bound to a name
        where anything but the next statement reads it; and the output shapes by name."""
        kept = self.needed(outputs)
        nodes = self.nodes
        readers = {i: [j for j in kept if i in nodes[j].reads] for i in kept}
        # both values a block call returns are bound, so each is read: one nothing reads is an output
        outputs = list(outputs) + [i for i in kept if (nodes[i].call or nodes[i].returned_with is not None)
                                   and not readers[i] and i not in outputs]

        def named(i):
            if i in outputs or i < self.inputs or nodes[i].call or nodes[i].returned_with is not None:
                return True
            if any(nodes[j].call for j in readers[i]):
                return True  # a call's argument is a value's name
            follows = kept[kept.index(i) + 1] if kept.index(i) + 1 < len(kept) else None
            return any(nodes[j].op is not None or j != follows or nodes[j].reads[0] != i or i in nodes[j].reads[1:]
                       for j in readers[i])
        names = {i: input_names[i] if i < self.inputs else f"v{n}" for n, i in enumerate(kept) if named(i)}
        inputs = [ir.InputDecl(name=names[i], dims=nodes[i].shape, span=SPAN, dims_span=SPAN)
                  for i in kept if i < self.inputs]
        inlined = self.inlined(kept, readers, outputs, names)
        #: the chain each inlined value is written as, in the merge that reads it
        chains: dict[int, ir.ItemStatement] = {}
        statements, flowing = [], 0
        for i in [i for i in kept if i >= self.inputs]:
            node = nodes[i]
            binding = ir.ValueName(name=names[i], span=SPAN) if i in names else None
            if node.returned_with is not None:
                continue  # bound by its call's statement, just above
            if node.call is not None:
                call = ir.Call(name=node.call, args=tuple(ref(names[j]) for j in node.reads), span=SPAN,
                               name_span=SPAN)
                bindings = (binding, ir.ValueName(name=names[i + 1], span=SPAN))
                statements.append(ir.ItemStatement(bindings=bindings, chain=(call,), span=SPAN))
                flowing = i + 1  # the last value returned flows on
                continue
            if node.op is not None:
                operands = tuple(chains[j].source if j in chains else ir.ValueName(name=names[j], span=SPAN)
                                 for j in node.reads)
                written = tuple(chains.get(j) for j in node.reads)
                merge = ir.ValueMerge(op=node.op, flags=node.flags, operands=operands,
                                      chains=written if any(written) else (), span=SPAN)
                body = [statement([merge])]
            else:
                body = list(node.statements)
                if node.resize_to is not None:
                    fields = {"size": names[node.resize_to], **node.resize}
                    body.insert(0, statement([write_layer(self.draw, "upsample", fields)]))
                source = node.reads[0]
                # a value a call returns is read by its name: it is bound, and the flow alone does not read it
                returned = nodes[source].call is not None or nodes[source].returned_with is not None
                if source != flowing or (source in names and (returned or self.draw(st.booleans()))) or i in inlined:
                    body[0] = body[0].model_copy(update={"source": ir.ValueName(name=names[source], span=SPAN)})
            if i in inlined:
                # the same draws as written as statements, so that the DAGs drawn after stay the same;
                # what follows reads any other value by its name, as it would after this one
                chains[i] = body[0].model_copy(update={"chain": tuple(item for st_ in body for item in st_.chain)})
                flowing = i
                continue
            body[-1] = body[-1].model_copy(update={"binding": binding})
            statements += body
            flowing = i
        shapes = {names[i]: nodes[i].shape for i in outputs}
        return inputs, statements, shapes


@st.composite
def dag_input_shapes(draw):
    """One to three feature maps of one rank: 1D, 2D (most often) or 3D, small; the inputs after
    the first of its spatial size or not."""
    rank = draw(st.sampled_from([1, 2, 2, 2, 3]))
    size = {1: st.integers(4, 20), 2: st.integers(4, 12), 3: st.integers(3, 6)}[rank]
    first = tuple(draw(size) for _ in range(rank))
    shapes = [(draw(st.integers(1, 6)), *first)]
    for _ in range(draw(st.integers(0, 2))):
        sizes = first if draw(st.booleans()) else tuple(draw(size) for _ in range(rank))
        shapes.append((draw(st.integers(1, 6)), *sizes))
    return shapes


INPUT_NAMES = ("x", "y", "z")


@st.composite
def dag_specs(draw):
    """A random valid spec as a DAG of named values, as IR, with its output shapes by name (as
    the layers' arithmetic gives them): one to three inputs, several values alive at once, paths
    starting from earlier values (`v -> ...`), sums, products and concatenations (cropped or
    not) of two or three values, channel slices and split pieces, resizes to another value's size,
    labelled modules applied again (`use`), blocks over two values returning two
    (`(r, s) = pairN(p, q)`), and `output` naming one to three values, some under a name of their
    own."""
    builder = DagBuilder(draw, draw(dag_input_shapes()))
    builder.grow(draw(st.integers(1, 6)))
    inputs, statements, shapes = builder.render(INPUT_NAMES, builder.outputs())
    names = tuple(ir.ValueName(name=name, span=SPAN) for name in shapes)
    # some returned under a name of their own (`output "0"=v2, head1=v5`): a number or a word
    keys = tuple(draw(st.sampled_from([None, None, str(n), f"head{n}"])) for n in range(len(names)))
    returned = {key or name: shape for key, (name, shape) in zip(keys, shapes.items())}
    if len(returned) < len(names):
        keys, returned = (), shapes  # a key that is another output's own name: none renamed
    head = [ir.NetworkDecl(name="generated", span=SPAN), *inputs]
    output = ir.OutputDecl(names=names, keys=keys if any(keys) else (), span=SPAN)
    spec = ir.SpecFile(path="<generated>", statements=tuple(head + builder.blocks + statements + [output]))
    return spec, returned


def run_dags(examples: int, check) -> int:
    """Call `check(spec_ir, output_shapes, index)` on `examples` random DAG specs, the same ones
    every run (derandomized, no example database); the number of checks that passed."""
    passed: list[int] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(pair=dag_specs())
    def run(pair):
        check(*pair, len(passed))
        passed.append(1)

    run()
    return len(passed)
