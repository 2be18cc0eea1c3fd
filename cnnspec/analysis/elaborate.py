"""Elaboration: surface IR -> resolved `Graph`, with every figure and every diagnostic.

Blocks are expanded at their call sites (their `in` is the incoming shape, so expansion and
shape inference go together), labels become state_dict paths, each layer's arguments are
bound and validated against its kind's parameter model, and output shapes, parameters,
buffers, MACs and receptive fields are computed layer by layer. Errors are collected, not
raised: a layer whose input shape is unknown after an error is still checked for everything
that does not need the shape.
"""

from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from pydantic import ValidationError

from cnnspec import ir
from cnnspec.analysis.expansion import CAP, LayerBound
from cnnspec.analysis.expressions import EvalError, Evaluator, Unknown, Word, describe_value
from cnnspec.analysis.stats import ReceptiveField, Row, layer_field, merge_fields, start_field
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, Label
from cnnspec.frontend.parser import LAYER_LIMIT_HELP, LAYER_LIMIT_MESSAGE, MAX_TOKENS
from cnnspec.graph import Graph, LayerNode, MergeNode, SeqNode
from cnnspec.layers import REGISTRY, LayerError
from cnnspec.layers.aliases import pytorch_alias
from cnnspec.layers.base import describe_shape
from cnnspec.layers.formulas import product
from cnnspec.wording import closest, human


@dataclass(frozen=True)
class Limits:
    """Bounds that refuse a spec before anything is built: `[tool.cnnspec.limits]` sets them.

    The zoo's largest network has 822 layers in 701 tokens; a spec at these limits checks in a
    few seconds and a few hundred MB, and one beyond them is refused within about a second.
    """

    max_params: int = 10 ** 11
    max_activation: int = 10 ** 11
    #: layers after blocks and repeats are expanded, counted ahead of the expansion (E124)
    max_layers: int = 20_000
    max_repeat: int = 10_000
    max_call_depth: int = 64
    #: tokens of one source file, counted before it is parsed (E012)
    max_tokens: int = MAX_TOKENS


@dataclass
class Flow:
    shape: tuple[int, ...] | None
    rf: ReceptiveField


@dataclass
class Frame:
    """The network or one block call: its totals, for `expect` bounds inside it."""

    what: str
    params: int = 0
    buffers: int = 0
    macs: int = 0
    layers: int = 0
    memory: int = 0
    expects: list = field(default_factory=list)

    def metric(self, name: str) -> int | None:
        return {"params": self.params, "macs": self.macs, "flops": 2 * self.macs, "buffers": self.buffers,
                "layers": self.layers, "memory": self.memory, "activations": self.memory}.get(name)


METRICS = ("params", "macs", "flops", "buffers", "layers", "memory", "activations")
#: the metrics that grow with the input's size: their contracts do not hold at another input
INPUT_METRICS = frozenset({"macs", "flops", "memory", "activations"})


#: names a label cannot take, because every `nn.Module` already has them (labels become submodule names);
#: labels starting with `_` are refused too, as PyTorch keeps its own state under such names
RESERVED_LABELS = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu",
    "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
    "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers",
    "named_children", "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
})


class Scope:
    """A naming scope: a labelled group or a block call, numbering its items like nn.Sequential."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.counter = 0
        self.labels: dict[str, ir.Span] = {}

    def join(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def next_position(self) -> str:
        path = self.join(str(self.counter))
        self.counter += 1
        return path


@dataclass
class Env:
    names: dict
    in_shape: tuple[int, ...] | None
    frames: tuple[Frame, ...]
    calls: tuple[tuple[str, ir.Span], ...] = ()
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Site:
    """Where elaboration stands, for diagnostics: a block call (`copy` None) or one copy of a repeat,
    whose repeated item is `item`."""

    span: ir.Span
    copy: tuple[int, int] | None = None
    item: ir.Span | None = None


def call_chain(sites: list[Site]) -> tuple[Label, ...]:
    """One label per call a diagnostic was raised inside, outermost first; a call that is itself the
    repeated item says which copy it is (`in copy 3 of 4 of this call`)."""
    labels: list[Label] = []
    pending: Site | None = None
    for site in sites:
        if site.copy is not None:
            if pending is not None:
                labels.append(Label(span=pending.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]}"))
            pending = site
            continue
        if pending is not None and pending.item == site.span:
            labels.append(Label(span=site.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]} of this call"))
        else:
            if pending is not None:
                labels.append(Label(span=pending.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]}"))
            labels.append(Label(span=site.span, message="in this call"))
        pending = None
    if pending is not None:
        labels.append(Label(span=pending.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]}"))
    return tuple(labels)


class _Abort(Exception):
    """Stop elaborating: the spec expands beyond the limits."""


@dataclass
class Elaboration:
    graph: Graph | None
    rows: list[Row]
    diagnostics: list[Diagnostic]
    totals: Frame
    scope_blocks: dict[str, str]
    #: `expect` statements not checked because the input was overridden (see `Elaborator`)
    skipped: tuple = ()


class Elaborator:
    def __init__(self, blocks: dict[str, ir.BlockDef], limits: Limits = Limits(), overridden_input: bool = False,
                 blocks_complete: bool = True):
        """`overridden_input`: the input is not the one the spec declares (`--input`, `input=`), so
        its `expect shape` contracts and those on figures that grow with the input (`INPUT_METRICS`)
        do not apply and are skipped; `params`, `buffers` and `layers` are still checked.

        `blocks_complete` is false when an import or a block definition failed: a name that is
        neither a layer kind nor a known block may be one of the blocks lost, and its uses are not
        separate mistakes, so they are not reported."""
        self.blocks = blocks
        self.blocks_complete = blocks_complete
        self.limits = limits
        self.overridden_input = overridden_input
        self.skipped: dict[int, ir.Node] = {}
        self.diagnostics: list[Diagnostic] = []
        self.rows: list[Row] = []
        self.next_id = 0
        self.layer_count = 0
        self.bound = LayerBound(blocks, limits.max_repeat, limits.max_call_depth)
        self.params_refused = False
        self.activation_refused = False
        self.scope_blocks: dict[str, str] = {}
        #: the block calls and repeat copies being elaborated, outermost first
        self.sites: list[Site] = []

    # ---------------------------------------------------------------- reporting
    def error(self, code: Code, message: str, span: ir.Span | None, *, label: str = "", help: str | None = None,
              labels: tuple[Label, ...] = (), notes: tuple[str, ...] = ()) -> None:
        """Report a diagnostic (an error or a warning, as its code says); raised inside block calls,
        it points at every call that led there (a block's body is written once and may fail in only
        one of its calls)."""
        if self.sites:
            labels = labels + tuple(c for c in call_chain(self.sites) if c.span != span and c not in labels)
        self.diagnostics.append(Diagnostic(code=code, message=message, span=span, label=label,
                                           help=help, labels=labels, notes=notes))

    @contextmanager
    def inside(self, site: Site):
        """Elaborate within a call or a repeat's copy, which diagnostics raised there point back to."""
        self.sites.append(site)
        try:
            yield
        finally:
            self.sites.pop()

    def eval_error(self, error: EvalError) -> None:
        self.error(error.code, error.message, error.span, label=error.label, help=error.help)

    def evaluate(self, expr, env: Env):
        """Evaluate, reporting failures; `None` when the value cannot be had."""
        try:
            return Evaluator(env.names, env.in_shape)(expr)
        except EvalError as error:
            self.eval_error(error)
        except Unknown:
            pass
        except RecursionError:
            self.error(Code.SPEC_TOO_LARGE, "expression nested too deeply", expr.span)
        return None

    # ---------------------------------------------------------------- entry
    def run(self, spec: ir.SpecFile, name: str, input_decl: ir.InputDecl, statements) -> Elaboration:
        shape = tuple(input_decl.dims)
        network = Frame("the network")
        env = Env(names={}, in_shape=shape, frames=(network,))
        flow = Flow(shape, start_field(shape[1:], shape[0]))
        self.check_activation(shape, input_decl.dims_span)
        items: list = []
        try:
            self.check_layer_budget(statements, env)
            flow = self.statements(statements, flow, Scope(""), env, items)
        except _Abort:
            flow = Flow(None, ())
        self.check_expects(network, "the network")
        graph = None
        if flow.shape is not None and not any(d.severity == "error" for d in self.diagnostics):
            graph = Graph.model_construct(name=name, input_name=input_decl.name, input_shape=shape, output_shape=flow.shape,
                          body=SeqNode.model_construct(items=tuple(items)))
        return Elaboration(graph, self.rows, self.diagnostics, network, self.scope_blocks, tuple(self.skipped.values()))

    # ---------------------------------------------------------------- statements
    def statements(self, statements, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        for statement in statements:
            flow = self.statement(statement, flow, scope, env, items)
        return flow

    def statement(self, st, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        kind = st.node
        if kind == "items":
            return self.item_statement(st, flow, scope, env, items)
        if kind == "expect_shape":
            self.expect_shape(st, flow)
            return flow
        if kind == "expect_metric":
            if st.metric not in METRICS:
                near = closest(st.metric, METRICS)
                self.error(Code.UNKNOWN_METRIC, f"unknown metric `{st.metric}` in `expect`", st.span,
                           help=f"did you mean `{near}`?" if near else "metrics are " + ", ".join(f"`{m}`" for m in METRICS))
            else:
                env.frames[-1].expects.append(st)
            return flow
        # declarations are handled before elaboration; here they are misplaced
        what = {"block": "a block", "network": "`network`", "input": "`input`", "import": "`import`"}[kind]
        self.error(Code.MISPLACED_DECLARATION, f"{what} cannot be declared inside a block or group", st.span,
                   help="declare it at the top level of the file")
        return flow

    def item_statement(self, st: ir.ItemStatement, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        if st.label is None:
            for item in st.chain:
                flow = self.item(item, flow, scope, env, items)
            return flow
        if st.label.endswith("}"):
            return self.numbered(st, flow, scope, env, items)
        path = self.claim(scope, st.label, st.label_span)
        return self.labelled(path, st.chain, flow, scope, env, items, st.span)

    def labelled(self, path: str, chain, flow: Flow, scope: Scope, env: Env, items: list, span: ir.Span) -> Flow:
        """A labelled chain: a single layer or call takes the name, anything else becomes a scope."""
        if len(chain) == 1 and chain[0].node in ("layer", "call"):
            return self.item(chain[0], flow, scope, env, items, path=path)
        inner, sub = Scope(path), []
        inner_env = Env(env.names, env.in_shape, env.frames, env.calls, env.scopes + (path,))
        for item in chain:
            flow = self.item(item, flow, inner, inner_env, sub)
        items.append(SeqNode.model_construct(items=tuple(sub), scope=path, span=span))
        return flow

    def claim(self, scope: Scope, label: str, span: ir.Span) -> str:
        if label in scope.labels:
            first = scope.labels[label]
            self.error(Code.DUPLICATE_LABEL, f"label `{label}` is used twice in this scope", span, label="second use",
                       labels=(Label(span=first, message="first used here"),),
                       help="each label becomes a state_dict key and must be unique in its group")
        else:
            scope.labels[label] = span
        if label in RESERVED_LABELS or label.startswith("_"):
            self.error(Code.RESERVED_LABEL, f"label `{label}` is reserved: PyTorch's `nn.Module` already has an attribute `{label}`",
                       span, label="cannot name a submodule",
                       help=f"choose another name, such as `{label.strip('_')}_` or `{label.strip('_')}1`")
        scope.counter += 1
        return scope.join(label)

    # ---------------------------------------------------------------- items
    def item(self, item, flow: Flow, scope: Scope, env: Env, items: list, path: str | None = None) -> Flow:
        node = item.node
        if node == "layer" or node == "call":
            name = item.kind if node == "layer" else item.name
            name_span = item.kind_span if node == "layer" else item.name_span
            if name in self.blocks:
                return self.call(item, name, name_span, flow, scope, env, items, path)
            if node == "call" and item.splice:
                self.error(Code.UNKNOWN_LAYER, f"`*` spreads a block, and `{name}` is not a block", name_span,
                           label="not a block", help="remove the `*`" if name in REGISTRY else None)
                return Flow(None, ())
            if name in REGISTRY:
                return self.layer(item, name, flow, env, items, path or scope.next_position())
            if self.blocks_complete:
                self.error(Code.UNKNOWN_LAYER, f"unknown layer or block `{name}`", name_span,
                           label="not a layer kind or a block", help=self.unknown_layer_help(name))
            self.consume_args(item, env)
            return Flow(None, ())
        if node == "group":
            return self.statements(item.body, flow, scope, env, items)
        if node == "repeat":
            return self.repeat(item, flow, scope, env, items)
        if node == "when":
            condition = self.evaluate(item.condition, env)
            if condition is None:
                return Flow(None, ())
            if isinstance(condition, Word):
                self.error(Code.UNKNOWN_NAME, f"unknown name `{condition}`", item.condition.span, help=self.suggest(condition, env))
                return Flow(None, ())
            chosen = item.then if condition else item.otherwise
            return self.statements(chosen.body, flow, scope, env, items) if chosen else flow
        if node == "residual":
            return self.residual(item, flow, scope, env, items)
        if node in ("concat", "add"):
            return self.branches(item, flow, scope, env, items)
        if node == "scale":
            return self.scale(item, flow, scope, env, items)
        raise AssertionError(node)

    def unknown_layer_help(self, name: str) -> str:
        """PyTorch's name for a kind (`BatchNorm2d`, `ConvTranspose2d`, `ReLU`) first, then the closest name."""
        alias = pytorch_alias(name)
        if alias is not None and alias[0] in REGISTRY:
            kind, written = alias
            return f"did you mean `{kind}`? PyTorch's `{name}` is written `{written or kind}` in cnnspec"
        near = closest(name, list(REGISTRY) + list(self.blocks))
        return f"did you mean `{near}`?" if near else "run `cnnspec layers` for the layer kinds"

    def consume_args(self, item, env: Env) -> None:
        """Evaluate the arguments of an unusable item, so their own errors are reported too."""
        for expr in list(item.args) + [o.value for o in item.options]:
            self.evaluate(expr, env)

    def repeat_count(self, item: ir.Repeat, env: Env) -> int | None:
        count = self.evaluate(item.count, env)
        if count is None:
            return None
        if isinstance(count, bool) or not isinstance(count, int):
            self.error(Code.INVALID_REPEAT, f"a repeat count must be a whole number, found {describe_value(count)}", item.count.span)
            return None
        if not 1 <= count <= self.limits.max_repeat:
            self.error(Code.INVALID_REPEAT, f"repeat count {count} is out of range", item.count.span,
                       label=f"must be between 1 and {self.limits.max_repeat:,}",
                       help="a count of 0 would remove the item: delete it instead" if count < 1 else None)
            return None
        return count

    def repeat(self, item: ir.Repeat, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        count = self.repeat_count(item, env)
        if count is None:
            return Flow(None, ())
        self.check_copies(item.item, count, item.span, env)
        for copy in range(1, count + 1):
            with self.inside(Site(item.span, (copy, count), item.item.span)) if count > 1 else nullcontext():
                flow = self.item(item.item, flow, scope, env, items)
        return flow

    def numbered(self, st: ir.ItemStatement, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        """`denselayer{}: dense(32) * 6`: each copy named in the enclosing scope, `{}` counting from 1
        (`denselayer1` ... `denselayer6`), as torchvision names DenseNet's layers; `block{4}`
        counts from 4."""
        if len(st.chain) != 1:
            self.error(Code.WRONG_POSITIONALS, f"a numbered label `{st.label}` names the copies of one item", st.span,
                       help=f"write `{st.label}: item * n`")
            return Flow(None, ())
        item, count = st.chain[0], 1
        if item.node == "repeat":
            count = self.repeat_count(item, env)
            if count is None:
                return Flow(None, ())
            item = item.item
        self.check_copies(item, count, st.span, env)
        stem, first = st.label[:-1].split("{")
        start = int(first) if first else 1
        for index in range(start, start + count):
            path = self.claim(scope, f"{stem}{index}", st.label_span)
            with self.inside(Site(st.span, (index - start + 1, count), item.span)) if count > 1 else nullcontext():
                flow = self.labelled(path, (item,), flow, scope, env, items, st.span)
        return flow

    # ---------------------------------------------------------------- the layer limit
    def check_layer_budget(self, statements, env: Env) -> None:
        """Before anything is built: refuse (E124) at the item where the layers counted ahead
        (`LayerBound`) cross `max_layers`, so a spec of 10^12 layers is refused as fast as one of 10."""
        found = self.crossing(statements, env, 0)
        if found is not None:
            self.too_many_layers(*found)

    def crossing(self, statements, env: Env, before: int) -> tuple[ir.Span, str, int] | None:
        """The item at which `before` plus the statements' layers cross the limit: its span, a
        label saying what it adds, and the layers before it. Structures written in place (groups,
        a `when` already decided, merges) are looked into; a call or a repeat is where its
        layers come from."""
        limit = self.limits.max_layers
        for st in statements:
            layers = self.bound.statement(st, env.names, env.in_shape)
            if before + layers <= limit:
                before += layers
                continue
            if st.label is not None and st.label.endswith("}"):
                return st.span, f"{layers_text(layers)} in these copies", before
            for item in st.chain:
                layers = self.bound.item(item, env.names, env.in_shape)
                if before + layers <= limit:
                    before += layers
                    continue
                parts = self.bound.parts(item, env.names, env.in_shape) if item.node not in (
                    "layer", "call", "repeat") else None
                for part in parts or ():
                    found = self.crossing(part, env, before)
                    if found is not None:
                        return found
                    before += self.bound.statements(part, env.names, env.in_shape)
                return (*self.adds(item, layers, env), before)
        return None

    def adds(self, item, layers: int, env: Env) -> tuple[ir.Span, str]:
        """Where an item that crosses the layer limit is written, and what it adds."""
        if item.node == "repeat":
            count = self.bound.count(item.count, env.names, env.in_shape)
            inner = self.bound.item(item.item, env.names, env.in_shape)
            return item.span, f"{count:,} copies of {layers_text(inner)}"
        if item.node in ("layer", "call") and (item.kind if item.node == "layer" else item.name) in self.blocks:
            name_span = item.kind_span if item.node == "layer" else item.name_span
            return name_span, f"`{name_span_text(item)}` expands to {layers_text(layers)}"
        if item.node in ("layer", "call"):
            return item.span, "the limit is crossed here"
        return keyword_span(item.span, item.node), f"expands to {layers_text(layers)}"

    def check_copies(self, item, count: int, span: ir.Span, env: Env) -> None:
        """A repeat about to be expanded: refused (E124) if its copies surely cross the limit (inside
        a block, where the count ahead could not know `in` or the arguments)."""
        inner = self.bound.item(item, env.names, env.in_shape)
        if self.layer_count + count * inner > self.limits.max_layers:
            self.too_many_layers(span, f"{count:,} copies of {layers_text(inner)}", self.layer_count)

    def too_many_layers(self, span: ir.Span, label: str, before: int) -> None:
        notes = (f"{layers_text(before)} before it",) if before else ()
        self.error(Code.TOO_MANY_LAYERS, LAYER_LIMIT_MESSAGE.format(self.limits.max_layers), span, label=label, notes=notes,
                   help=LAYER_LIMIT_HELP)
        raise _Abort()

    # ---------------------------------------------------------------- block calls
    def call(self, item, name: str, name_span: ir.Span, flow: Flow, scope: Scope, env: Env, items: list,
             path: str | None) -> Flow:
        block = self.blocks[name]
        stack = [n for n, _ in env.calls]
        if name in stack:
            chain = " -> ".join(f"`{n}`" for n in stack[stack.index(name):] + [name])
            self.error(Code.RECURSIVE_BLOCK, f"block `{name}` calls itself: {chain}", name_span, label="recursive call",
                       labels=(Label(span=block.name_span, message="block defined here"),),
                       help="blocks cannot recurse; write the levels out, or pass a parameter to a separate block")
            return Flow(None, ())
        if len(env.calls) >= self.limits.max_call_depth:
            self.error(Code.RECURSIVE_BLOCK, f"block calls nest deeper than {self.limits.max_call_depth}", name_span)
            return Flow(None, ())
        names = self.bind_block(item, block, env)
        splice = item.node == "call" and item.splice and path is None
        path = path or (None if splice else scope.next_position())
        if names is None:
            return Flow(None, ())
        layers = self.bound.body(block, names)
        if self.layer_count + layers > self.limits.max_layers:
            self.too_many_layers(name_span, f"`{name}` expands to {layers_text(layers)}", self.layer_count)
        frame = Frame(f"block `{name}`")
        calls = env.calls + ((name, name_span),)
        with self.inside(Site(item.span)):
            if splice:
                # the block's items take positions in the enclosing scope
                inner_env = Env(names, flow.shape, env.frames + (frame,), calls, env.scopes)
                flow = self.statements(block.body.body, flow, scope, inner_env, items)
                self.check_expects(frame, f"this call of `{name}`")
                return flow
            inner_env = Env(names, flow.shape, env.frames + (frame,), calls, env.scopes + (path,))
            self.scope_blocks[path] = name
            sub: list = []
            flow = self.statements(block.body.body, flow, Scope(path), inner_env, sub)
            items.append(SeqNode.model_construct(items=tuple(sub), scope=path, block=name, args=tuple(names.items()), span=item.span))
            self.check_expects(frame, f"this call of `{name}`")
        return flow

    def bind_block(self, item, block: ir.BlockDef, env: Env) -> dict | None:
        args = item.args if item.node == "call" else ()
        options = item.options if item.node == "call" else ()
        if item.node == "layer" and (item.args or item.options):
            self.error(Code.BAD_BLOCK_CALL, f"block `{block.name}` takes its arguments in parentheses", item.span,
                       help=f"write `{block.name}(...)`")
            return None
        params = [p.name for p in block.params]
        signature = f"`{block.name}({', '.join(params)})`"
        ok = True
        if len(args) > len(params):
            self.error(Code.BAD_BLOCK_CALL, f"`{block.name}` takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                               f"{len(args)} given", args[len(params)].span, label="extra argument",
                       labels=(Label(span=block.name_span, message=f"defined as {signature}"),))
            ok = False
        values = {}
        for param, expr in zip(block.params, args):
            values[param.name] = (expr, env)
        for option in options:
            if option.key not in params:
                near = closest(option.key, params)
                self.error(Code.BAD_BLOCK_CALL, f"`{block.name}` has no parameter `{option.key}`", option.span,
                           help=f"did you mean `{near}`?" if near else f"its parameters: {signature}")
                ok = False
            elif option.key in values:
                self.error(Code.BAD_BLOCK_CALL, f"parameter `{option.key}` given twice", option.span)
                ok = False
            else:
                values[option.key] = (option.value, env)
        names: dict = {}
        for param in block.params:
            if param.name in values:
                expr, where = values[param.name]
                value = self.evaluate(expr, where)
                if isinstance(value, Word):
                    self.error(Code.UNKNOWN_NAME, f"unknown name `{value}`", expr.span, label="not defined here",
                               help=self.suggest(value, where))
                    ok = False
            elif param.default is not None:
                value = self.evaluate(param.default, Env(names, env.in_shape, env.frames))
            else:
                self.error(Code.BAD_BLOCK_CALL, f"`{block.name}` needs a value for `{param.name}`", item.span,
                           labels=(Label(span=block.name_span, message=f"defined as {signature}"),),
                           help=f"pass it by position or as `{param.name}=...`")
                ok = False
                continue
            if value is None:
                ok = False
            names[param.name] = value
        return names if ok else None

    def suggest(self, name: str, env: Env) -> str | None:
        if boolean_hint(name):
            return boolean_hint(name)
        near = closest(name, list(env.names) + ["in"])
        return f"did you mean `{near}`?" if near else None

    # ---------------------------------------------------------------- layers
    def layer(self, item, kind_name: str, flow: Flow, env: Env, items: list, path: str) -> Flow:
        kind = REGISTRY[kind_name]
        bound = self.bind_layer(item, kind, env)
        if bound is None:
            return Flow(None, ())
        values, spans = bound
        span = item.span
        try:
            params = kind.Params(**values)
        except ValidationError as error:
            self.validation_errors(kind, error, values, spans, span)
            return Flow(None, ())
        if flow.shape is None:
            return Flow(None, ())
        self.layer_count += 1
        if self.layer_count > self.limits.max_layers:
            # what the count ahead could not know (a shape-dependent count or condition)
            self.too_many_layers(span, f"layer {self.layer_count:,}", self.layer_count - 1)
        try:
            out = kind.infer_shape(params, flow.shape)
            n_params = kind.count_params(params, flow.shape)
            buffers = kind.count_buffers(params, flow.shape)
            macs = kind.count_macs(params, flow.shape, out)
            window = kind.window(params, flow.shape, out)
            notes = kind.warnings(params, flow.shape)
        except LayerError as error:
            where = spans.get(error.arg, span) if error.arg else span
            self.error(error.code, error.message, where, label=error.label,
                       help=error.help, notes=(f"the input to `{kind_name}` is {describe_shape(flow.shape)}",))
            return Flow(None, ())
        for note in notes:
            self.error(note.code, note.message, spans.get(note.arg, span), help=note.help)
        self.check_activation(out, span)
        rf = layer_field(kind_name, params, flow.shape, out, window, flow.rf)
        node_id = self.new_id()
        trainable = 0 if getattr(params, "frozen", False) else n_params
        items.append(LayerNode.model_construct(id=node_id, kind=kind_name, path=path, params=params, in_shape=flow.shape,
                               out_shape=out, span=span))
        self.add_row(Row(node_id, path, kind_name, out, n_params, buffers, macs, rf, len(env.scopes), env.scopes,
                         trainable=trainable, line=span.line), env, span)
        return Flow(out, rf)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add_row(self, row: Row, env: Env, span: ir.Span) -> None:
        self.rows.append(row)
        for frame in env.frames:
            frame.params += row.params
            frame.buffers += row.buffers
            frame.macs += row.macs
            frame.memory += row.activation_bytes
            frame.layers += row.kind not in ("add", "concat", "mul")
        total = env.frames[0].params
        if total > self.limits.max_params and not self.params_refused:
            self.params_refused = True
            self.error(Code.TOO_MANY_PARAMS, f"the network reaches {total:,} parameters, over the limit of {self.limits.max_params:,}",
                       span, label=f"this layer alone has {row.params:,}",
                       help="a dense layer over a large input explodes: pool or stride down before it")

    def check_activation(self, shape, span: ir.Span) -> None:
        elements = product(shape)
        if elements > self.limits.max_activation and not self.activation_refused:
            self.activation_refused = True
            self.error(Code.ACTIVATION_TOO_LARGE, f"an activation of {describe_shape(shape)} holds {elements:.3g} elements, over the "
                               f"limit of {self.limits.max_activation:.3g}", span,
                       help="downsample earlier, or check the input size")

    def bind_layer(self, item, kind, env: Env):
        """Positional arguments and options -> field values and the span of each."""
        values: dict = {}
        spans: dict = {}
        positional = list(kind.positional)
        fields = set(kind.Params.model_fields) - {"kind"}
        written = kind.name
        negative = negative_dimension(item.args)
        if negative is not None:
            span, sizes = negative
            self.error(Code.SIGNED_POSITIONAL, f"a size cannot hold `{sizes[-1]}`: `{'x'.join(sizes)}` reads as a number, then a name "
                               "minus a number", span, label="not one size",
                       help=f"give it as an option, with commas: `{written} {kind.positional[0]}=({', '.join(sizes)})`"
                       if kind.positional else None)
            return None
        ok = True
        for expr in item.args:
            if (positional and positional[0] == "kernel" and expr.node == "binop" and expr.op == "*"
                    and expr.left.node == "num" and expr.right.node == "num"):
                a, b = expr.left.value, expr.right.value
                self.error(Code.KERNEL_AS_PRODUCT, f"`{a}*{b}` multiplies to {a * b}; a kernel size is written `{a}x{b}`", expr.span,
                           label="this is a product", help=f"write `{written} ... {a}x{b}`")
                ok = False
                positional.pop(0)
                continue
            value = self.evaluate(expr, env)
            if value is None:
                ok = False
                if positional:
                    positional.pop(0)
                continue
            if isinstance(value, Word):
                if value in kind.flags:
                    field_name, flag_value = kind.flags[value]
                    values[field_name] = flag_value
                    spans[field_name] = expr.span
                    continue
                if value in REGISTRY or value in self.blocks:
                    self.error(Code.WRONG_POSITIONALS, f"`{value}` is a layer, not an argument of `{written}`", expr.span,
                               label="starts a new layer", help="put each layer on its own line, or separate them with `;`")
                else:
                    choices = list(env.names) + list(kind.flags) + ["in"]
                    near = closest(value, choices)
                    self.error(Code.UNKNOWN_NAME, f"unknown name `{value}`", expr.span, label="not defined here",
                               help=f"did you mean `{near}`?" if near else self.names_help(kind, env))
                    if positional:
                        positional.pop(0)
                ok = False
                continue
            if not positional:
                taken = ", ".join(f"`{p}`" for p in kind.positional) or "no positional arguments"
                self.error(Code.WRONG_POSITIONALS, f"too many positional arguments for `{written}`", expr.span,
                           label="extra argument", help=f"`{written}` takes {taken}; give the rest as `key=value`")
                ok = False
                continue
            name = positional.pop(0)
            if name == "out" and isinstance(value, tuple) and "kernel" in kind.positional:
                self.error(Code.MISSING_CHANNELS, f"`{written}` needs the number of output channels before the kernel",
                           expr.span, label="this is the kernel",
                           help=f"write the channel count first: `{written} 64 {describe_value(value).strip('`')}`")
                ok = False
                positional = [p for p in positional if p != "kernel"]
                continue
            values[name] = value
            spans[name] = expr.span
        for option in item.options:
            key = option.key
            field_name = key if key in fields else f"{key}_" if f"{key}_" in fields else None
            if field_name is None:
                near = closest(key, [f.rstrip("_") for f in fields])
                self.error(Code.UNKNOWN_OPTION, f"`{written}` has no option `{key}`", option.span, label="unknown option",
                           help=f"did you mean `{near}`?" if near else
                           ("its options: " + ", ".join(f"`{f.rstrip('_')}`" for f in sorted(fields)) if fields
                            else f"`{written}` takes no options"))
                ok = False
                continue
            if field_name in values:
                self.error(Code.INVALID_VALUE, f"`{key}` is given twice", option.span, label="second value")
                ok = False
                continue
            value = self.evaluate(option.value, env)
            if value is None:
                ok = False
                continue
            values[field_name] = value
            spans[field_name] = option.value.span
        return (values, spans) if ok else None

    @staticmethod
    def names_help(kind, env: Env) -> str | None:
        parts = []
        if env.names:
            parts.append("names defined here: " + ", ".join(f"`{n}`" for n in env.names))
        if kind.flags:
            parts.append(f"`{kind.name}` accepts the words " + ", ".join(f"`{f}`" for f in kind.flags))
        return "; ".join(parts) or None

    def validation_errors(self, kind, error: ValidationError, values: dict, spans: dict, span: ir.Span) -> None:
        reported = set()
        for problem in error.errors():
            field_name = str(problem["loc"][0]) if problem["loc"] else ""
            if field_name in reported:
                continue
            reported.add(field_name)
            shown = field_name.rstrip("_")
            where = spans.get(field_name, span)
            if problem["type"] == "missing":
                usage = " ".join(f"<{p}>" for p in kind.positional)
                what = "output channel count" if field_name == "out" else f"`{shown}`"
                self.error(Code.WRONG_POSITIONALS, f"`{kind.name}` needs {'an ' if what[0] == 'o' else ''}{what}", span,
                           label="missing argument", help=f"write it as `{kind.name} {usage}`")
                continue
            value = values.get(field_name)
            if isinstance(value, Word):
                self.error(Code.UNKNOWN_NAME, f"unknown name `{value}` for `{shown}`", where, label="not defined here",
                           help=self.accepted_words(kind, field_name, value))
                continue
            message = problem["msg"].replace("Input should be", "should be")
            message = message[0].lower() + message[1:]
            self.error(Code.INVALID_VALUE, f"`{shown}` {message}, got {describe_value(value)}", where, label="invalid value")

    @staticmethod
    def accepted_words(kind, field_name: str, written: str = "") -> str | None:
        """What a field takes, for a word it does not; Python's `False` for a boolean is told its case."""
        import typing

        annotation = kind.Params.model_fields[field_name].annotation
        words = []
        for arg in typing.get_args(annotation) or (annotation,):
            if typing.get_origin(arg) is typing.Literal:
                words += [a for a in typing.get_args(arg) if isinstance(a, str)]
        if typing.get_origin(annotation) is typing.Literal:
            words = [a for a in typing.get_args(annotation) if isinstance(a, str)]
        if words:
            return "it takes " + ", ".join(f"`{w}`" for w in words)
        if bool in (typing.get_args(annotation) or (annotation,)):
            return boolean_hint(written) or "it takes `true` or `false`"
        return "it takes a number"

    # ---------------------------------------------------------------- merges
    def merge(self, op: str, branches: list[tuple[list, Flow]], flow: Flow, out, span: ir.Span, env: Env,
              items: list, crop: bool = False) -> Flow:
        node_id = self.new_id()
        rf = merge_fields([(b[1].rf, b[1].shape) for b in branches], out, op, crop)
        path = env.scopes[-1] if env.scopes else ""
        items.append(MergeNode.model_construct(id=node_id, op=op, branches=tuple(SeqNode.model_construct(items=tuple(b[0])) for b in branches),
                               crop=crop, path=path, in_shape=flow.shape, out_shape=out, span=span))
        # a row is named for the construct: `scale` multiplies, and `mul` is a layer kind
        kind = "scale" if op == "mul" else op
        self.add_row(Row(node_id, path, kind, out, 0, 0, 0, rf, len(env.scopes), env.scopes, line=span.line), env, span)
        self.check_activation(out, span)
        return Flow(out, rf)

    def residual(self, item: ir.Residual, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        main_items: list = []
        main = self.statements(item.main.body, flow, scope, env, main_items)
        if main.shape is not None and not has_layers(main_items):
            self.empty_branch("the main path of `residual` has no layers: it would add the input to itself",
                              item.main.span, item.main.body,
                              help="give it layers, or put a `when` around the whole `residual`")
            return Flow(None, ())
        short_items: list = []
        shortcut = flow
        short = item.shortcut
        active = short is not None
        if short is not None and short.condition is not None:
            condition = self.evaluate(short.condition, env)
            if condition is None or isinstance(condition, Word):
                if isinstance(condition, Word):
                    self.error(Code.UNKNOWN_NAME, f"unknown name `{condition}`", short.condition.span,
                               help=self.suggest(condition, env))
                return Flow(None, ())
            active = bool(condition)
        if active:
            if short.label:
                path = self.claim(scope, short.label, short.label_span)
                inner, sub = Scope(path), []
                shortcut = self.statements(short.body.body, flow, inner,
                                           Env(env.names, env.in_shape, env.frames, env.calls, env.scopes + (path,)), sub)
                short_items.append(SeqNode.model_construct(items=tuple(sub), scope=path, span=short.span))
            else:
                shortcut = self.statements(short.body.body, flow, scope, env, short_items)
        elif short is not None and short.label:
            self.claim(scope, short.label, short.label_span)
        if main.shape is None or shortcut.shape is None:
            return Flow(None, ())
        out = broadcast(main.shape, shortcut.shape)
        if out is None or out != main.shape and out != shortcut.shape:
            keyword = keyword_span(item.span, "residual")
            where = short.span if active else None
            labels = (Label(span=where, message=f"shortcut gives {describe_shape(shortcut.shape)}"),) if where else ()
            notes = () if active else (f"without an active `shortcut`, the input {describe_shape(flow.shape)} is added unchanged",)
            self.error(Code.RESIDUAL_MISMATCH, f"residual branches disagree: main path gives {describe_shape(main.shape)}, "
                               f"shortcut gives {describe_shape(shortcut.shape)}", keyword,
                       label=f"main path gives {describe_shape(main.shape)}", labels=labels, notes=notes,
                       help=projection_help(flow.shape, main.shape))
            return Flow(None, ())
        return self.merge("add", [(main_items, main), (short_items, shortcut)], flow, out, item.span, env, items)

    def branches(self, item, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        """`concat` and `add`: each item statement of the body is a branch. A branch that is a `when`
        choosing nothing (false without `else`, or an empty arm) contributes no branch at all, so a
        `concat` left with one branch is that branch; any other branch without a layer (`{ }`, a block
        that expands to nothing) is E205, as `identity` says a pass-through."""
        results, dropped, empty = [], 0, False
        for statement in item.body.body:
            sub: list = []
            result = self.statement(statement, flow, scope, env, sub)
            if statement.node != "items":
                continue
            if result.shape is not None and not has_layers(sub):
                if is_when(statement):
                    dropped += 1
                    continue
                what = "join the input unchanged" if item.node == "concat" else "add the input unchanged"
                self.empty_branch(f"a branch of `{item.node}` has no layers: it would {what}", statement.span,
                                  (statement,), help="write `identity` for a branch that passes its input through")
                empty = True
                continue
            results.append((sub, result, statement.span))
        if empty:
            return Flow(None, ())
        if not results:
            notes = (f"its {'only branch is a `when`' if dropped == 1 else f'{dropped} branches are `when`s'} "
                     "that chose nothing",) if dropped else ()
            self.error(Code.EMPTY_STRUCTURE, f"`{item.node}` has no branches", keyword_span(item.span, item.node),
                       label="nothing to join" if item.node == "concat" else "nothing to add", notes=notes,
                       help=f"give it a branch, or put a `when` around the whole `{item.node}`")
            return Flow(None, ())
        if any(r[1].shape is None for r in results):
            return Flow(None, ())
        shapes = [r[1].shape for r in results]
        keyword = keyword_span(item.span, item.node)
        if item.node == "add":
            out = shapes[0]
            for s in shapes[1:]:
                out = broadcast(out, s) if out is not None else None
            if out is None:
                self.error(Code.ADD_MISMATCH, "add branches disagree: " + ", ".join(describe_shape(s) for s in shapes), keyword,
                           label="the branches are added here",
                           labels=tuple(Label(span=r[2], message=f"gives {describe_shape(r[1].shape)}") for r in results),
                           help="every branch must give the same shape (or one that broadcasts to it)")
                return Flow(None, ())
            return self.merge("add", [(r[0], r[1]) for r in results], flow, out, item.span, env, items)
        crop = "crop" in item.flags
        for flag in item.flags:
            if flag != "crop":
                self.error(Code.UNKNOWN_OPTION, f"`concat` has no option `{flag}`", keyword, help="`concat crop { ... }` center-crops "
                                                                                     "larger maps to the smallest")
                return Flow(None, ())
        ranks = {len(s) for s in shapes}
        problem = None
        if len(ranks) > 1:
            problem = "they have different ranks"
        elif crop:
            spatial = tuple(min(s[i] for s in shapes) for i in range(1, len(shapes[0])))
            out = (sum(s[0] for s in shapes), *spatial)
        else:
            rest = {s[1:] for s in shapes}
            if len(rest) > 1:
                problem = "their spatial sizes differ"
            out = (sum(s[0] for s in shapes), *shapes[0][1:])
        if problem:
            self.error(Code.CONCAT_MISMATCH, "concat branches disagree: " + ", ".join(describe_shape(s) for s in shapes), keyword,
                       label=problem,
                       labels=tuple(Label(span=r[2], message=f"gives {describe_shape(r[1].shape)}") for r in results),
                       help="concat joins along channels; every other dimension must agree. "
                            "`concat crop { ... }` center-crops the larger maps")
            return Flow(None, ())
        return self.merge("concat", [(r[0], r[1]) for r in results], flow, out, item.span, env, items, crop=crop)

    def scale(self, item: ir.Scale, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        sub: list = []
        result = self.statements(item.body.body, flow, scope, env, sub)
        if result.shape is None or flow.shape is None:
            return Flow(None, ())
        if not has_layers(sub):
            self.empty_branch("`scale` has no layers: it would multiply the input by itself", item.body.span,
                              item.body.body, help="give it the branch that computes the factor, such as "
                                                   "`avgpool global; conv in.c 1x1; sigmoid`, or put a `when` "
                                                   "around the whole `scale`")
            return Flow(None, ())
        out = broadcast(flow.shape, result.shape)
        if out != flow.shape:
            keyword = keyword_span(item.span, "scale")
            self.error(Code.SCALE_MISMATCH, f"scale branch gives {describe_shape(result.shape)}, which does not broadcast over "
                               f"the input {describe_shape(flow.shape)}", keyword,
                       label="the input is multiplied here",
                       help=f"end the branch with {flow.shape[0]} channels and 1x1 (or matching) spatial size, "
                            f"such as `conv in.c 1x1`")
            return Flow(None, ())
        return self.merge("mul", [([], flow), (sub, result)], flow, out, item.span, env, items)

    def empty_branch(self, message: str, span: ir.Span, statements, help: str) -> None:
        """E205 at a branch without layers, saying why it is empty when a `when` or a call made it so."""
        notes = ()
        if any(is_when(st) for st in statements):
            notes = ("its `when` chose nothing",)
        elif any(st.node == "items" and any(i.node in ("call", "layer") for i in st.chain) for st in statements):
            notes = ("the block it calls expands to no layers here",)
        self.error(Code.EMPTY_STRUCTURE, message, span, label="no layers", notes=notes, help=help)

    # ---------------------------------------------------------------- contracts
    def expect_shape(self, st: ir.ExpectShape, flow: Flow) -> None:
        if st.metric != "shape":
            self.error(Code.UNKNOWN_METRIC, f"`expect {st.metric}` takes a comparison, such as `expect {st.metric} < 5M`", st.span)
            return
        if self.overridden_input:
            self.skipped[id(st)] = st
            return
        if flow.shape is not None and tuple(st.dims) != flow.shape:
            self.error(Code.EXPECT_SHAPE_UNMET, f"expected shape {describe_shape(st.dims)}, found {describe_shape(flow.shape)}", st.span,
                       label=f"the shape here is {describe_shape(flow.shape)}")

    def check_expects(self, frame: Frame, where: str) -> None:
        if any(d.severity == "error" for d in self.diagnostics) and frame.expects:
            # totals after an error are incomplete: do not pile contract failures on top
            return
        for st in frame.expects:
            if self.overridden_input and st.metric in INPUT_METRICS:
                self.skipped[id(st)] = st
                continue
            actual = frame.metric(st.metric)
            ok = {"<": actual < st.value, "<=": actual <= st.value, ">": actual > st.value,
                  ">=": actual >= st.value, "==": actual == st.value, "!=": actual != st.value}[st.op]
            if not ok:
                self.error(Code.EXPECT_BOUND_UNMET, f"`expect {st.metric} {st.op} {st.text}` is not met: {where} has "
                                   f"{format_metric(st.metric, actual)}", st.span,
                           label=f"actual {format_metric(st.metric, actual)}")


def format_metric(metric: str, value: int) -> str:
    unit = {"params": "parameters", "macs": "MACs", "flops": "FLOPs", "buffers": "buffer elements",
            "layers": "layers", "memory": "activation bytes", "activations": "activation bytes"}[metric]
    return f"{value:,} {unit} ({human(value)})"


def layers_text(layers: int) -> str:
    """A count of layers, saturated as `LayerBound` saturates it."""
    return f"over {CAP:,} layers" if layers >= CAP else f"{layers:,} layer{'s' if layers != 1 else ''}"


def name_span_text(item) -> str:
    return item.kind if item.node == "layer" else item.name


def boolean_hint(name: str) -> str | None:
    """Python's `True`/`False` (and other casings) written for the language's `true`/`false`."""
    return f"booleans are lowercase: write `{name.lower()}`" if name.lower() in ("true", "false") else None


def negative_dimension(args) -> tuple[ir.Span, list[str]] | None:
    """`reshape 16x-1` parses as `16` and `x - 1` (`4x4x-1` as `4` and `x4x - 1`): the span of both and
    the sizes meant (`16`, `-1`)."""
    for before, expr in zip(args, args[1:]):
        if (before.node in ("num", "dims") and expr.node == "binop" and expr.op == "-" and expr.left.node == "ref"
                and re.fullmatch(r"x(\d+x)*", expr.left.name) and expr.left.attr is None and expr.right.node == "num"):
            sizes = [str(v) for v in (before.values if before.node == "dims" else (before.value,))]
            sizes += [n for n in expr.left.name.split("x") if n]
            span = before.span.model_copy(update={"end_line": expr.span.end_line, "end_column": expr.span.end_column})
            return span, sizes + [f"-{expr.right.value}"]
    return None


def has_layers(items) -> bool:
    """Whether elaborated items hold a layer or a merge anywhere (an empty group or block holds none)."""
    return any(item.node != "seq" or has_layers(item.items) for item in items)


def is_when(statement) -> bool:
    """A statement that is a `when` (labelled or not), alone."""
    return statement.node == "items" and len(statement.chain) == 1 and statement.chain[0].node == "when"


def keyword_span(span: ir.Span, keyword: str) -> ir.Span:
    """The span of the keyword that opens a construct (`residual`, `concat`, ...)."""
    return ir.Span(file=span.file, line=span.line, column=span.column, end_line=span.line,
                   end_column=span.column + len(keyword))


def broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """Numpy broadcasting of two per-sample shapes, right-aligned; `None` if they do not broadcast.

    >>> broadcast((64, 28, 28), (64, 1, 1)), broadcast((64, 28, 28), (32, 28, 28))
    ((64, 28, 28), None)
    """
    if len(a) != len(b):
        return None
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def projection_help(in_shape, main_shape) -> str | None:
    if in_shape is None or main_shape is None or len(in_shape) != len(main_shape) or len(in_shape) < 2:
        return None
    strides = {n // m for n, m in zip(in_shape[1:], main_shape[1:]) if m and n % m == 0}
    stride = strides.pop() if len(strides) == 1 else None
    if stride is None:
        return None
    kernel = "x".join(["1"] * (len(in_shape) - 1))
    stride_text = f" stride={stride}" if stride != 1 else ""
    return f"add a projection shortcut: `shortcut {{ conv {main_shape[0]} {kernel}{stride_text} bias=false; bn }}`"
