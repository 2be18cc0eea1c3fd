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
    `kind` in each, if given); the number of checks that passed."""
    passed: list[int] = []

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(pair=specs(kind))
    def run(pair):
        check(*pair, len(passed))
        passed.append(1)

    run()
    return len(passed)
