"""Hypothesis strategies for random valid specs, built as IR (`cnnspec.ir`), not as text.

A spec grows item by item from its input shape. Each layer's arguments are drawn from what
the layer accepts at the current shape (every option of every kind), checked with the
registry's own shape rule, and written as IR with positional arguments, options or flag words
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


def infer(kind_name: str, fields: dict, shape):
    """The output shape, or None when the layer does not apply (its own rule decides)."""
    kind = REGISTRY[kind_name]
    try:
        params = kind.Params.model_validate({"kind": kind_name, **fields}, strict=False)
        return kind.infer_shape(params, tuple(shape))
    except (LayerError, ValueError):
        return None


# ---------------------------------------------------------------- layer arguments

def per_dim(draw, rank: int, values):
    """One value for all dimensions, or one per dimension."""
    if rank > 1 and draw(st.booleans()):
        return tuple(draw(values) for _ in range(rank))
    return draw(values)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def conv_fields(draw, shape) -> dict:
    rank = len(shape) - 1
    c = shape[0]
    fields: dict = {}
    groups = draw(st.sampled_from(divisors(c)))
    depthwise = groups == c and c > 1 and draw(st.booleans())
    out = groups * draw(st.integers(1, 3)) if not depthwise else c * draw(st.integers(1, 2))
    fields["out"] = out
    fields["kernel"] = per_dim(draw, rank, st.integers(1, 3))
    if draw(st.booleans()):
        fields["stride"] = per_dim(draw, rank, st.integers(1, 2))
    pad = draw(st.sampled_from(["none", "int", "dims", "pairs", "same", "valid"]))
    if pad == "int":
        fields["pad"] = draw(st.integers(0, 2))
    elif pad == "dims" and rank > 1:
        fields["pad"] = tuple(draw(st.integers(0, 1)) for _ in range(rank))
    elif pad == "pairs":
        fields["pad"] = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(rank))
    elif pad in ("same", "valid"):
        fields["pad"] = pad
    if draw(st.booleans()):
        fields["pad_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    if draw(st.integers(0, 3)) == 0:
        fields["dilation"] = per_dim(draw, rank, st.integers(1, 2))
    if depthwise:
        fields["depthwise"] = True
    elif groups > 1 or draw(st.booleans()):
        fields["groups"] = groups
    if draw(st.booleans()):
        fields["bias"] = draw(st.booleans())
    if draw(st.integers(0, 4)) == 0:
        kernel = fields["kernel"] if isinstance(fields["kernel"], tuple) else (fields["kernel"],) * rank
        weight_shape = (out, c // groups, *kernel)
        fields["weights"] = nested(draw, weight_shape)
        if draw(st.booleans()):
            del fields["kernel"]
    if draw(st.integers(0, 3)) == 0:
        fields["frozen"] = True
    return fields


def nested(draw, shape):
    if not shape:
        return draw(st.sampled_from([-2, -1, 0, 1, 2, 0.5, -0.25]))
    return [nested(draw, shape[1:]) for _ in range(shape[0])]


def deconv_fields(draw, shape) -> dict:
    rank = len(shape) - 1
    groups = draw(st.sampled_from(divisors(shape[0])))
    fields = {"out": groups * draw(st.integers(1, 3)), "kernel": per_dim(draw, rank, st.integers(1, 3))}
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2))
    if stride > 1 or draw(st.booleans()):
        fields["stride"] = stride
    if dilation > 1:
        fields["dilation"] = dilation
    if draw(st.booleans()):
        fields["pad"] = per_dim(draw, rank, st.integers(0, 1))
    if max(stride, dilation) > 1 and draw(st.booleans()):
        fields["output_pad"] = draw(st.integers(0, max(stride, dilation) - 1))
    if groups > 1 or draw(st.booleans()):
        fields["groups"] = groups
    if draw(st.booleans()):
        fields["bias"] = draw(st.booleans())
    return fields


def upsample_fields(draw, shape) -> dict:
    rank = len(shape) - 1
    fields: dict = {}
    if draw(st.booleans()):
        fields["scale"] = per_dim(draw, rank, st.integers(1, 2))
    else:
        fields["size"] = per_dim(draw, rank, st.integers(1, 14))
    if rank == 2 and draw(st.booleans()):
        fields["mode"] = "bilinear"
        if draw(st.booleans()):
            fields["align_corners"] = draw(st.booleans())
    elif draw(st.booleans()):
        fields["mode"] = "nearest"
    return fields


def pool_fields(draw, shape, kind: str) -> dict:
    rank = len(shape) - 1
    form = draw(st.sampled_from(["window", "window", "global", "adaptive"]))
    if form == "global":
        return {"global_": True}
    if form == "adaptive":
        return {"kernel": per_dim(draw, rank, st.integers(1, 4)), "adaptive": True}
    kernel = draw(st.integers(1, 3))
    fields: dict = {"kernel": kernel if draw(st.booleans()) else (kernel,) * rank if rank > 1 else kernel}
    if draw(st.booleans()):
        fields["stride"] = per_dim(draw, rank, st.integers(1, 3))
    if kernel >= 2 and draw(st.booleans()):
        fields["pad"] = draw(st.integers(0, kernel // 2))
    if draw(st.booleans()):
        fields["ceil"] = draw(st.booleans())
    if kind == "maxpool" and draw(st.integers(0, 3)) == 0:
        fields["dilation"] = draw(st.integers(1, 2))
    if kind == "avgpool" and draw(st.booleans()):
        fields["count_pad"] = draw(st.booleans())
    return fields


def eps(draw):
    return draw(st.sampled_from([1e-5, 1e-3, 0.01]))


def layer_fields(draw, kind: str, shape) -> dict:
    """Random arguments for `kind` at `shape` (possibly invalid: the caller checks)."""
    c = shape[0]
    if kind == "conv":
        return conv_fields(draw, shape)
    if kind == "deconv":
        return deconv_fields(draw, shape)
    if kind == "upsample":
        return upsample_fields(draw, shape)
    if kind in ("maxpool", "avgpool"):
        return pool_fields(draw, shape, kind)
    if kind == "bn":
        return draw(st.fixed_dictionaries({}, optional={"eps": st.just(eps(draw)),
                                                        "momentum": st.sampled_from([0.1, 0.01, 0.5]),
                                                        "affine": st.booleans()}))
    if kind == "ln":
        return draw(st.fixed_dictionaries({}, optional={"eps": st.just(eps(draw)), "affine": st.booleans(),
                                                        "last": st.booleans()}))
    if kind == "groupnorm":
        return {"groups": draw(st.sampled_from(divisors(c))),
                **draw(st.fixed_dictionaries({}, optional={"eps": st.just(eps(draw)), "affine": st.booleans()}))}
    if kind == "lrn":
        return draw(st.fixed_dictionaries({}, optional={
            "size": st.integers(1, 5), "alpha": st.sampled_from([1e-4, 0.01]), "beta": st.sampled_from([0.75, 0.5]),
            "k": st.sampled_from([1.0, 2.0])}))
    if kind == "leaky_relu":
        return draw(st.fixed_dictionaries({}, optional={"slope": st.sampled_from([0.01, 0.2, -0.1])}))
    if kind == "mul":
        return {"factor": draw(st.sampled_from([0.17, 2.0, -1.5, 1.0]))}
    if kind == "elu":
        return draw(st.fixed_dictionaries({}, optional={"alpha": st.sampled_from([1.0, 0.5])}))
    if kind == "gelu":
        return draw(st.fixed_dictionaries({}, optional={"approximate": st.sampled_from(["none", "tanh"])}))
    if kind in ("dropout", "dropout2d"):
        return draw(st.fixed_dictionaries({}, optional={"p": st.sampled_from([0.0, 0.1, 0.5])}))
    if kind == "reshape":
        total = product(shape)
        target = draw(st.sampled_from([(total,), (c, total // c), (-1,), (c, -1), (1, total)]))
        return {"shape": target if len(target) > 1 else target[0]}
    if kind == "channel_shuffle":
        return {"groups": draw(st.sampled_from(divisors(c)))}
    if kind == "chunk":
        chunks = draw(st.sampled_from(divisors(c)))
        return {"chunks": chunks, "index": draw(st.integers(0, chunks - 1))}
    if kind == "linear":
        fields = {"out": draw(st.integers(1, 8))}
        if draw(st.booleans()):
            fields["bias"] = draw(st.booleans())
        if len(shape) > 1:
            fields["last"] = True
        return fields
    if kind == "layerscale":
        return draw(st.fixed_dictionaries({}, optional={"init": st.sampled_from([1e-6, 0.5])}))
    return {}


def needs_flat(kind: str) -> bool:
    return False


def needs_map(kind: str) -> bool:
    return kind in ("conv", "deconv", "upsample", "maxpool", "avgpool", "lrn", "channel_shuffle", "channels_last",
                    "channels_first")


@st.composite
def layer_of(draw, kind: str, shape):
    """A list of (IR item, shape after it): the layer, preceded by `flatten` when it needs a flat input."""
    items = []
    if needs_flat(kind) and len(shape) > 1:
        items.append((write_layer(draw, "flatten", {}), (product(shape),)))
        shape = (product(shape),)
    if needs_map(kind) and len(shape) == 1:
        return [(write_layer(draw, "identity", {}), shape)]
    for _ in range(6):
        fields = layer_fields(draw, kind, shape)
        out = infer(kind, fields, shape)
        if out is not None and product(out) <= 4096:
            return items + [(write_layer(draw, kind, fields), out)]
    return items + [(write_layer(draw, "identity", {}), shape)]


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
