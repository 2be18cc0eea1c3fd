"""The lint catalogue: warnings about specs that are valid but probably not what was meant.

Each rule is one function registered under its code in `RULES`; it looks at the resolved
graph (layers in order, with their shapes and figures) and yields findings. The rules come
from the course material behind cnnspec; `docs/lints/CODE.md` explains each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from cnnspec import ir
from cnnspec.analysis.stats import Row, field_sizes
from cnnspec.codes import Code
from cnnspec.graph import Graph, LayerNode
from cnnspec.ir import Span
from cnnspec.layers import REGISTRY
from cnnspec.layers.base import Traits
from cnnspec.layers.conv import ConvParams, conv_geometry
from cnnspec.layers.dense import LinearParams
from cnnspec.layers.formulas import product
from cnnspec.layers.pool import PoolParams, pool_geometry
from cnnspec.registry import Registry


def traits(node: LayerNode | None) -> Traits:
    """What the layer's kind declares of itself; no traits for no layer."""
    return REGISTRY[node.kind].traits if node is not None else Traits()


@dataclass(frozen=True)
class Finding:
    #: the layer found at fault; rules about the source rather than the graph give `span` instead
    node: LayerNode | None
    message: str
    help: str | None = None
    span: Span | None = None

    @property
    def where(self) -> Span:
        return self.span if self.span is not None else self.node.span


@dataclass(frozen=True)
class Context:
    graph: Graph
    rows: dict[int, Row]
    #: every layer in execution order, and the layer that follows each within its sequence
    layers: list[LayerNode]
    following: dict[int, LayerNode]
    total_params: int
    #: the top file as written, and every block it can see (its own and imported ones)
    spec: ir.SpecFile | None = None
    blocks: dict[str, ir.BlockDef] = field(default_factory=dict)


Rule = Callable[[Context], Iterator[Finding]]
#: each lint's code (which holds its title) and its rule
RULES: Registry[Code, Rule] = Registry("lint {}")
rule = RULES.registers


def successors(graph: Graph) -> dict[int, LayerNode]:
    """For each layer, the layer right after it in the same sequence (a merge or a scope between
    them breaks the chain)."""
    following: dict[int, LayerNode] = {}
    _link(graph.body.items, following)
    return following


# module functions, not recursive closures: a closure that calls itself is a reference cycle,
# which keeps what it holds (here the graph's layers) alive until the cyclic collector runs


def _link(items, following: dict[int, LayerNode]) -> None:
    """Each layer of the sequence `items` to the next one in `following`."""
    flat: list[LayerNode | None] = []
    _flatten(items, flat, following)
    for a, b in zip(flat, flat[1:]):
        if a is not None and b is not None:
            following[a.id] = b


def _flatten(items, flat: list, following: dict[int, LayerNode]) -> None:
    """`items` with unscoped sequences opened, a merge or a scope as None (each linked on its own)."""
    for item in items:
        if item.node == "seq" and item.scope is None:
            if item.source is not None:
                flat.append(None)  # the flow starts again from a named value
            _flatten(item.items, flat, following)
        elif item.node == "layer":
            flat.append(item)
        else:
            flat.append(None)
            for sub in (item.branches if item.node == "merge" else (item,)):
                _link(sub.items, following)


def dropped(n: int, k_eff: int, s: int, begin: int, end: int) -> int:
    """Input pixels a floor-mode window never reaches: the remainder, less the end padding.

    >>> dropped(224, 7, 2, 3, 3), dropped(7, 2, 2, 0, 0), dropped(32, 3, 3, 0, 0)
    (0, 1, 2)
    """
    return max(0, (n + begin + end - k_eff) % s - end)


def windows(node: LayerNode):
    """(sizes, effective kernel, stride, pads, ceil) of a conv or a sliding pool; None otherwise."""
    p, shape = node.params, node.in_shape
    if isinstance(p, ConvParams):
        g = conv_geometry(p, shape)
        return shape[1:], [d * (k - 1) + 1 for k, d in zip(g.kernel, g.dilation)], g.stride, g.pads, False
    if isinstance(p, PoolParams):
        g = pool_geometry(node.kind, p, shape)
        if g.mode != "window":
            return None
        kernel = [d * (k - 1) + 1 for k, d in zip(g.kernel, g.dilation)]
        return shape[1:], kernel, g.stride, tuple((q, q) for q in g.pad), p.ceil
    return None


#: what one step along each spatial axis is called, by the input's rank (D, H, W for 3D)
AXIS_NAMES = {1: ("position",), 2: ("row", "column"), 3: ("slice", "row", "column")}
#: what one element of a map is called, by rank
ELEMENT_NAMES = {1: "positions", 2: "pixels", 3: "voxels"}


def dims(sizes) -> str:
    """A kernel or map as the language writes it: `3` in 1D, `3x3` in 2D, `3x3x3` in 3D.

    >>> dims((3,)), dims((7, 7)), dims((3, 3, 3))
    ('3', '7x7', '3x3x3')
    """
    return "x".join(map(str, sizes))


def cube(size: int, rank: int) -> str:
    """The same size along every axis of a rank: `cube(3, 3) == "3x3x3"`."""
    return dims((size,) * rank)


def small_stack(kernel, dilation) -> tuple[int, tuple[int, ...], int] | None:
    """The stack of 3-wide convs that sees as far as a kernel, when it costs at most 60% of the
    kernel's weights: (convs, their kernel, their weights per channel pair), else `None`.

    The kernel reaches r_i = d_i * (k_i - 1) + 1 along axis i; n stacked 3-wide convs (1 wide
    along axes the kernel does not extend) reach 2n + 1, so n = max(r_i) // 2, costing
    n * 3^m weights (m extended axes) against prod(k_i). In 1D the stack never saves (3n > 2n + 1),
    in 2D a 5x5 saves too little (18 of 25) and a 7x7 enough (27 of 49), in 3D a 5x5x5 does
    (54 of 125).

    >>> small_stack((7, 7), (1, 1)), small_stack((5, 5), (1, 1)), small_stack((31,), (1,))
    ((3, (3, 3), 27), None, None)
    >>> small_stack((3, 3, 3), (1, 1, 1)), small_stack((5, 5, 5), (1, 1, 1)), small_stack((1, 7), (1, 1))
    (None, (2, (3, 3, 3), 54), None)
    """
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    convs = max(reach) // 2
    small = tuple(3 if r > 1 else 1 for r in reach)
    weights = convs * product(small)
    return (convs, small, weights) if convs and weights * 10 <= product(kernel) * 6 else None


def is_two_by_two_pool(node: LayerNode) -> bool:
    if not isinstance(node.params, PoolParams):
        return False
    g = pool_geometry(node.kind, node.params, node.in_shape)
    return g.mode == "window" and set(g.kernel) == {2} and set(g.stride) == {2}


@rule(Code.STRIDE_DROPS_ROWS)
def dropping_stride(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        found = windows(node)
        if found is None or is_two_by_two_pool(node):
            continue
        sizes, kernel, stride, pads, ceil = found
        if ceil:
            continue
        for axis, (n, k, s, (b, e)) in enumerate(zip(sizes, kernel, stride, pads)):
            # a window narrower than its stride samples the input on purpose (a strided 1x1 projection)
            lost = dropped(n, k, s, b, e) if k >= s else 0
            if lost:
                what = AXIS_NAMES[len(sizes)][axis]
                plural = f"{lost} {what}s" if lost > 1 else f"the last {what}"
                yield Finding(node, f"stride {s} never reaches {plural} of the {n}-wide input: "
                                    f"(n + padding - kernel) % stride = {(n + b + e - k) % s}",
                              help="pad so that (n + 2p - k) is a multiple of the stride, or pool with `ceil`")
                break


@rule(Code.LARGE_POOLING_WINDOW)
def large_pool(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        if isinstance(node.params, PoolParams):
            g = pool_geometry(node.kind, node.params, node.in_shape)
            if g.mode == "window" and max(g.kernel) > 3:
                rank = len(g.kernel)
                yield Finding(node, f"a {dims(g.kernel)} pooling window discards most of what it sees",
                              help=f"pool {cube(2, rank)} or {cube(3, rank)} (with stride 2), or use a strided conv "
                                   "that learns what to keep")


@rule(Code.LARGE_KERNEL)
def large_kernel(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        if not isinstance(node.params, ConvParams):
            continue
        g = conv_geometry(node.params, node.in_shape)
        # a depthwise kernel costs k*k per channel, not per channel pair: large ones are cheap
        stack = small_stack(g.kernel, g.dilation) if g.groups != g.in_channels else None
        if stack is not None:
            convs, small, weights = stack
            yield Finding(node, f"a {dims(g.kernel)} kernel costs {product(g.kernel)} weights per channel pair; "
                                f"{convs} stacked {dims(small)} convs see as far with {weights}",
                          help=f"replace it with {convs} {dims(small)} convs (with activations between), "
                               "or make it depthwise")


@rule(Code.BIAS_BEFORE_BATCH_NORM)
def bias_before_bn(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        after = ctx.following.get(node.id)
        if traits(node).bias and node.params.bias and traits(after).centres:
            norm = REGISTRY[after.kind].noun or f"`{after.kind}`"
            yield Finding(node, f"this bias is cancelled by the {norm} right after it, which subtracts the mean",
                          help=f"write `bias=false`: the {norm}'s shift does the bias's work")


@rule(Code.DENSE_PARAMETER_EXPLOSION)
def dense_explosion(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        params = ctx.rows[node.id].params
        if isinstance(node.params, LinearParams) and params > 10_000_000 and params * 2 > ctx.total_params:
            share = params / ctx.total_params
            yield Finding(node, f"this dense layer holds {params:,} parameters, {share:.0%} of the network "
                                f"({params * 4 / 2**20:,.0f} MiB in fp32)",
                          help="shrink its input first: pool the map (`avgpool global`), or reduce channels "
                               f"with a {cube(1, max(1, len(ctx.graph.input_shape) - 1))} conv before flattening")


@rule(Code.SHRINKING_UNPADDED_STACK)
def shrinking_stack(ctx: Context) -> Iterator[Finding]:
    runs: list[list[LayerNode]] = [[]]
    for node in ctx.layers:
        if isinstance(node.params, ConvParams) and node.in_shape[1:] and _unpadded_shrinking(node):
            runs[-1].append(node)
        elif not traits(node).pointwise and runs[-1]:
            runs.append([])
    for run in runs:
        if len(run) >= 3:
            start, end = min(run[0].in_shape[1:]), min(run[-1].out_shape[1:])
            if end * 2 <= start:
                yield Finding(run[-1], f"{len(run)} unpadded convs in a row take the map from {start} to {end}: "
                                       "the border is lost a little at every layer",
                              help="pad them (`pad=same` for odd kernels at stride 1) and downsample on purpose")


def _unpadded_shrinking(node: LayerNode) -> bool:
    g = conv_geometry(node.params, node.in_shape)
    return all(b == 0 and e == 0 for b, e in g.pads) and max(g.kernel) > 1 and set(g.stride) == {1}


@rule(Code.NARROW_HEAD)
def narrow_head(ctx: Context) -> Iterator[Finding]:
    out = ctx.graph.output_shape
    spatial_in = ctx.graph.input_shape[1:]
    if not spatial_in or not ctx.layers:
        return
    if len(out) > 1 and any(d != 1 for d in out[1:]):
        return  # a dense prediction (segmentation, generation): each output pixel has its own field
    last = ctx.layers[-1]
    rf = ctx.rows[last.id].rf
    sizes = field_sizes(rf)
    if len(sizes) == len(spatial_in) and any(r < n for r, n in zip(sizes, spatial_in)):
        yield Finding(last, f"the output sees {dims(sizes)} {ELEMENT_NAMES[len(sizes)]} of the {dims(spatial_in)} input",
                      help="add depth or downsampling before the head, or pool globally")


@rule(Code.ODD_MAP_BEFORE_POOL)
def odd_before_pool(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        if is_two_by_two_pool(node) and not node.params.ceil:
            sizes = node.in_shape[1:]
            odd = [name for n, name in zip(sizes, AXIS_NAMES[len(sizes)]) if n % 2]
            if odd:
                listed = ", ".join(odd[:-1]) + f" and {odd[-1]}" if len(odd) > 1 else odd[0]
                yield Finding(node, f"the {dims(sizes)} map is odd: pooling it by {cube(2, len(sizes))} drops its last "
                                    f"{listed}",
                              help="pad the layer before so the map is even, or pool with `ceil`")


@rule(Code.DOUBLE_ACTIVATION)
def double_activation(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        after = ctx.following.get(node.id)
        first = traits(node)
        if first.activation and not first.probabilities and traits(after).activation:
            yield Finding(after, f"`{after.kind}` right after `{node.kind}`: the second one has little left to do",
                          help="keep one of them")


@rule(Code.DROPOUT_BEFORE_BATCH_NORM)
def dropout_before_bn(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        after = ctx.following.get(node.id)
        if traits(node).dropout and traits(after).running_statistics:
            yield Finding(node, "dropout right before batch norm shifts its statistics between training and "
                                "inference (the variance shift)",
                          help="put the dropout after the batch norm, or drop it")


@rule(Code.SOFTMAX_LAST)
def softmax_last(ctx: Context) -> Iterator[Finding]:
    if ctx.layers and traits(ctx.layers[-1]).probabilities:
        yield Finding(ctx.layers[-1], "the network ends in softmax, but most losses (cross entropy) expect logits "
                                      "and apply it themselves",
                      help="end with the last linear layer; apply softmax at inference if probabilities are needed")


@rule(Code.CHANNELS_NOT_MULTIPLE_OF_8)
def odd_channels(ctx: Context) -> Iterator[Finding]:
    for node in ctx.layers:
        if isinstance(node.params, ConvParams) and node.params.out >= 16 and node.params.out % 8:
            yield Finding(node, f"{node.params.out} output channels: vectorised kernels run fastest on multiples of 8",
                          help=f"use {node.params.out + 8 - node.params.out % 8} or {node.params.out - node.params.out % 8}")


#: the fields through which an item holds other items (expressions never name blocks)
NESTED_ITEMS = {"items": ("chain",), "block": ("body",), "group": ("body",), "repeat": ("item",),
                "residual": ("main", "shortcut"), "concat": ("body",), "add": ("body",), "scale": ("body",),
                "when": ("then", "otherwise"), "value_merge": ("chains",)}


def referenced_names(node) -> Iterator[str]:
    """Every layer kind and block name a statement, item or group mentions."""
    if isinstance(node, tuple):
        for part in node:
            yield from referenced_names(part)
    elif isinstance(node, ir.Shortcut):
        yield from referenced_names(node.body)
    elif node is not None:
        if node.node == "layer":
            yield node.kind
        elif node.node == "call":
            yield node.name
            # a block passed to another by name (`stage(basic, 64)`) is used
            yield from (e.name for e in (*node.args, *(o.value for o in node.options)) if e.node == "ref" and e.attr is None)
        elif node.node == "block":
            yield from (p.default.name for p in node.params if p.default is not None and p.default.node == "ref")
        for name in NESTED_ITEMS.get(node.node, ()):
            yield from referenced_names(getattr(node, name))


@rule(Code.UNUSED_BLOCK)
def unused_block(ctx: Context) -> Iterator[Finding]:
    if ctx.spec is None or not any(st.node == "block" for st in ctx.spec.statements):
        return
    # reachable from the top file's items, through the bodies of the blocks they call;
    # blocks of imported files are a library and may go unused
    pending = [name for st in ctx.spec.statements if st.node != "block" for name in referenced_names(st)]
    used: set[str] = set()
    while pending:
        name = pending.pop()
        if name in ctx.blocks and name not in used:
            used.add(name)
            pending += referenced_names(ctx.blocks[name].body)
    for st in ctx.spec.statements:
        if st.node == "block" and st.name not in used:
            yield Finding(None, f"block `{st.name}` is defined but never used", span=st.name_span,
                          help="call it, or delete it (blocks shared between specs belong in a file they import)")


def run_lints(graph: Graph, rows: list[Row], spec: ir.SpecFile | None = None,
              blocks: dict[str, ir.BlockDef] | None = None) -> list[tuple[Code, Finding]]:
    by_id = {row.id: row for row in rows}
    layers = list(graph.layers())
    ctx = Context(graph, by_id, layers, successors(graph), sum(r.params for r in rows) or 1, spec, blocks or {})
    findings = []
    for code, check in RULES.items():
        for finding in check(ctx):
            findings.append((code, finding))
    return findings
