"""Elaboration: surface IR -> resolved `Graph`, with every figure and every diagnostic.

Blocks are expanded at their call sites (their `in` is the incoming shape, so expansion and
shape inference go together), labels become state_dict paths, each layer's arguments are
bound and validated against its kind's parameter model, and output shapes, parameters,
buffers, MACs and receptive fields are computed layer by layer. Errors are collected, not
raised: a layer whose input shape is unknown after an error is still checked for everything
that does not need the shape.

This module walks statements, items, block calls and layers; the rest of the work has a module
of its own, each a part of `Elaborator`: `binding` (arguments to parameters, pydantic's
messages as diagnostics), `merges` (residual, concat, add, scale), `contracts` (`expect`),
`limits` (the bounds that refuse a spec), and `context` (what flows between items, and the
reporting of diagnostics). A layer's figures are `figures`'s, worked out once for equal layers.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from pydantic import ValidationError

from cnnspec import ir
from cnnspec.analysis.binding import Binding
from cnnspec.analysis.context import Env, Flow, Frame, Scope, Site
from cnnspec.analysis.contracts import Contracts
from cnnspec.analysis.dataflow import Dataflow
from cnnspec.analysis.expansion import LayerBound
from cnnspec.analysis.expressions import Word, describe_value, item_name
from cnnspec.analysis.figures import LayerFigures, figures
from cnnspec.analysis.limits import Abort, LayerLimits, Limits, layers_text
from cnnspec.analysis.merges import Merges
from cnnspec.analysis.sharing import Sharing
from cnnspec.analysis.stats import Row, describe_field, layer_field, start_field
from cnnspec.analysis.value_blocks import ValueBlocks
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, Label
from cnnspec.graph import Graph, LayerNode, SeqNode
from cnnspec.layers import REGISTRY, LayerError
from cnnspec.layers.aliases import pytorch_alias
from cnnspec.layers.base import count_state, describe_shape
from cnnspec.wording import closest

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


@dataclass
class Elaboration:
    graph: Graph | None
    rows: list[Row]
    diagnostics: list[Diagnostic]
    totals: Frame
    scope_blocks: dict[str, str]
    #: `expect` statements not checked because the input was overridden (see `Elaborator`)
    skipped: tuple = ()


class Elaborator(Sharing, Binding, Merges, ValueBlocks, Dataflow, Contracts, LayerLimits):
    def __init__(self, blocks: dict[str, ir.BlockDef], limits: Limits = Limits(), overridden_input: bool = False,
                 blocks_complete: bool = True):
        """`overridden_input`: the input is not the one the spec declares (`--input`, `input=`), so
        its `expect shape` contracts and those on figures that grow with the input (`INPUT_METRICS`)
        do not apply and are skipped; `params`, `buffers` and `layers` are still checked.

        `blocks_complete` is false when an import or a block definition failed: a name that is
        neither a layer kind nor a known block may be one of the blocks lost, and its uses are not
        separate mistakes, so they are not reported."""
        self.blocks = blocks
        self.find_value_params()
        self.blocks_complete = blocks_complete
        self.limits = limits
        self.overridden_input = overridden_input
        self.skipped: dict[int, ir.Node] = {}
        self.diagnostics: list[Diagnostic] = []
        self.rows: list[Row] = []
        self.next_id = 0
        self.layer_count = 0
        self.bound = LayerBound(blocks, limits.max_repeat, limits.max_call_depth)
        self.layer_figures = LayerFigures()
        self.params_refused = False
        self.activation_refused = False
        self.scope_blocks: dict[str, str] = {}
        #: every scope by its path, for dotted labels to reopen
        self.scopes: dict[str, Scope] = {}
        #: the block calls and repeat copies being elaborated, outermost first
        self.sites: list[Site] = []
        self.bound_values = []
        #: `output`'s values, by name in its order; `output_span` where it is declared
        self.outputs = []
        self.output_span = None
        self.misread = set()
        #: (code, span) of the warnings raised once for all calls of a block
        self.reported: set = set()
        self.definitions = {}
        self.sharing = 0

    # ---------------------------------------------------------------- entry
    def run(self, spec: ir.SpecFile, name: str, input_decls, statements) -> Elaboration:
        """Elaborate the network: the first of `input_decls` flows into the first statement, and
        every input is a value under its name."""
        first = input_decls[0]
        shape = tuple(first.dims)
        network = Frame("the network")
        flows = [Flow(tuple(decl.dims), start_field(tuple(decl.dims[1:]), decl.dims[0])) for decl in input_decls]
        flow = flows[0]
        values = self.top_values(input_decls, flows, statements)
        env = Env(names={}, in_shape=shape, frames=(network,), values=values)
        for decl in input_decls:
            self.check_activation(tuple(decl.dims), decl.dims_span)
        items: list = []
        try:
            self.check_layer_budget(statements, env)
            flow = self.statements(statements, flow, Scope(""), env, items)
        except Abort:
            flow = Flow(None, ())
        self.check_expects(network, "the network")
        self.report_unused_values()
        self.report_unused_inputs(values, input_decls[1:])
        items[:0] = self.input_binding(env.values, first.name)
        graph = None
        if flow.shape is not None and not any(d.severity == "error" for d in self.diagnostics):
            outputs = tuple((name, value.key, value.flow.shape, describe_field(value.flow.rf))
                            for name, value in self.outputs)
            inputs = tuple((decl.name, values.bound_inputs[decl.name].key, tuple(decl.dims)) for decl in input_decls)
            graph = Graph.model_construct(name=name, input_name=first.name, input_shape=shape, inputs=inputs,
                                          output_shape=outputs[0][2] if outputs else flow.shape, outputs=outputs,
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
            if st.metric in env.values.bound:
                # `expect p2 256x128x128`: the shape of a named value, an output's say
                value = self.read_value(ir.ValueName(name=st.metric, span=st.span), env)
                self.expect_shape(st.model_copy(update={"metric": "shape"}), value.flow, f"`{st.metric}`")
                return flow
            self.expect_shape(st, flow)
            return flow
        if kind == "expect_metric":
            self.expect_metric(st, env.frames[-1])
            return flow
        if kind == "output" and env.values.outer is None and not env.calls:
            self.output_decl(st, env)
            return flow
        # declarations are handled before elaboration; here they are misplaced
        what = {"block": "a block", "network": "`network`", "input": "`input`", "import": "`import`",
                "output": "`output`"}[kind]
        self.error(Code.MISPLACED_DECLARATION, f"{what} cannot be declared inside a block or group", st.span,
                   help="declare it at the top level of the file")
        return flow

    def item_statement(self, st: ir.ItemStatement, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        if st.bindings:
            return self.tuple_binding_statement(st, flow, scope, env, items)
        if st.binding is not None or st.source is not None:
            return self.dataflow_statement(st, flow, scope, env, items)
        if st.label is None:
            for item in st.chain:
                flow = self.item(item, flow, scope, env, items)
            return flow
        if st.label.endswith("}"):
            return self.numbered(st, flow, scope, env, items)
        path = self.claim(scope, st.label, st.label_span)
        return self.labelled(path, st.chain, flow, scope, env, items, st.span)

    def labelled(self, path: str, chain, flow: Flow, scope: Scope, env: Env, items: list, span: ir.Span) -> Flow:
        """A labelled chain: a single layer or call takes the name, anything else becomes a scope;
        either is a module that `use` may apply again."""
        before, in_shape = len(items), flow.shape
        if len(chain) == 1 and chain[0].node in ("layer", "call"):
            flow = self.item(chain[0], flow, scope, env, items, path=path)
        elif len(chain) == 1 and chain[0].node == "use":
            self.error(Code.INVALID_LABEL, "`use` applies a module under its own label, and takes no other",
                       span, label="labelled here", help=f"write `use {chain[0].label}` alone")
            return Flow(None, ())
        else:
            inner, sub = self.open_scope(path), []
            inner_env = Env(env.names, env.in_shape, env.frames, env.calls, env.scopes + (path,),
                            env.values.module(path, chain))
            for item in chain:
                flow = self.item(item, flow, inner, inner_env, sub)
            items.append(SeqNode.model_construct(items=tuple(sub), scope=path, span=span))
        self.define(path, chain, scope, env, span, in_shape, items, before)
        return flow

    def claim(self, scope: Scope, label: str, span: ir.Span) -> str:
        """The state_dict path of `label` written in `scope`. A dotted label (`classifier.cbr`) names
        a scope below this one, reopened if it exists (a labelled group, a block call) or made a
        plain container if not; only a label of this scope's own takes a position in it."""
        *parents, name = label.split(".")
        target = scope
        for part in parents:
            self.check_reserved(part, span)
            target = self.reopen(target, part, label, span)
        if name in target.labels and not self.sharing:
            # (a shared module's application claims its labels again, in the scopes its first made)
            first = target.labels[name]
            if name in target.positions:
                self.error(Code.DUPLICATE_LABEL, f"label `{name}` is the position of an unlabelled item of this scope",
                           span, label="second use", labels=(Label(span=first, message=f"takes position {name}"),),
                           help="an unlabelled item takes its position in its group, as nn.Sequential numbers "
                                "them: label that item, or choose another label")
            else:
                self.error(Code.DUPLICATE_LABEL, f"label `{name}` is used twice in this scope", span, label="second use",
                           labels=(Label(span=first, message="first used here"),),
                           help="each label becomes a state_dict key and must be unique in its group")
        else:
            target.labels[name] = span
        self.check_reserved(name, span)
        if target is scope:
            scope.counter += 1
        return target.join(name)

    def check_reserved(self, label: str, span: ir.Span) -> None:
        if label in RESERVED_LABELS or label.startswith("_"):
            self.error(Code.RESERVED_LABEL, f"label `{label}` is reserved: PyTorch's `nn.Module` already has an attribute `{label}`",
                       span, label="cannot name a submodule",
                       help=f"choose another name, such as `{label.strip('_')}_` or `{label.strip('_')}1`")

    def reopen(self, scope: Scope, name: str, label: str, span: ir.Span) -> Scope:
        """The scope `name` below `scope`, for a dotted label: the one already there, or a new
        container (which takes no position) where the name is free. A layer cannot hold others."""
        path = scope.join(name)
        found = self.scopes.get(path)
        if found is not None:
            return found
        if name in scope.labels:
            self.error(Code.INVALID_LABEL, f"`{name}` names a layer here, which cannot hold `{label}`", span,
                       label="placed inside a layer", labels=(Label(span=scope.labels[name], message=f"`{name}` is this layer"),),
                       help="a dotted label places its item in a scope: a labelled group, a block call, or a "
                            "name not used yet")
        else:
            scope.labels[name] = span
        return self.open_scope(path)

    def open_scope(self, path: str) -> Scope:
        """The naming scope of a labelled group, block call or container at `path`, kept so that a
        dotted label can reopen it (the first one, if a duplicate label made two)."""
        scope = Scope(path)
        self.scopes.setdefault(path, scope)
        return scope

    def position(self, scope: Scope, span: ir.Span) -> str:
        """The next position of `scope` for an unlabelled item at `span`, as nn.Sequential numbers it."""
        name = str(scope.counter)
        scope.counter += 1
        if name in scope.labels:
            self.error(Code.DUPLICATE_LABEL, f"this unlabelled item takes position {name}, which a label of this scope "
                                             "already names", span, label=f"position {name}",
                       labels=(Label(span=scope.labels[name], message="the label"),),
                       help="an unlabelled item takes its position in its group, as nn.Sequential numbers them: "
                            "label this item, or choose another label")
        else:
            scope.labels[name] = span
            scope.positions.add(name)
        return scope.join(name)

    # ---------------------------------------------------------------- items
    def item(self, item, flow: Flow, scope: Scope, env: Env, items: list, path: str | None = None) -> Flow:
        node = item.node
        if node == "layer" or node == "call":
            name = item_name(item.kind if node == "layer" else item.name, env.names)
            name_span = item.kind_span if node == "layer" else item.name_span
            if name in self.blocks:
                return self.call(item, name, name_span, flow, scope, env, items, path)
            if node == "call" and item.splice:
                self.error(Code.UNKNOWN_LAYER, f"`*` spreads a block, and `{name}` is not a block", name_span,
                           label="not a block", help="remove the `*`" if name in REGISTRY else None)
                return Flow(None, ())
            if name in REGISTRY:
                return self.layer(item, name, flow, env, items, path or self.position(scope, item.span))
            if name in env.names:
                self.error(Code.UNKNOWN_LAYER, f"`{name}` is a parameter holding {describe_value(env.names[name])}, "
                                               "not a block or layer kind", name_span, label="used as an item",
                           help="pass a block or a layer kind by its name, such as `stage(basic, 64)`")
            elif name in env.values.bound and node == "layer" and not item.args and not item.options:
                self.error(Code.UNKNOWN_LAYER, f"`{name}` is a named value, not a layer kind or a block", name_span,
                           label="read as a layer",
                           help=f"start from it with `{name} -> ...`; in a merge over values, a chain runs on to the "
                                f"next `name ->` or the `)`, so the values read as they are come first: "
                                f"`add({name}, other -> ...)`")
            elif self.blocks_complete:
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
        if node == "value_merge":
            return self.value_merge(item, flow, scope, env, items)
        if node == "use":
            return self.use(item, flow, scope, env, items)
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
        passed: dict = {}
        names = self.bind_block(item, block, env, passed)
        value_block = self.is_value_block(block)
        splice = item.node == "call" and item.splice and path is None
        path = path or (None if splice else self.position(scope, item.span))
        if names is None:
            return Flow(None, ())
        layers = self.bound.body(block, names)
        if self.layer_count + layers > self.limits.max_layers:
            self.too_many_layers(name_span, f"`{name}` expands to {layers_text(layers)}", self.layer_count)
        frame = Frame(f"block `{name}`")
        calls = env.calls + ((name, name_span),)
        if value_block:
            return self.value_block_call(item, block, names, passed, scope, path, flow, env, items, frame, calls)
        with self.inside(Site(item.span)):
            if splice:
                # the block's items take positions in the enclosing scope
                inner_env = Env(names, flow.shape, env.frames + (frame,), calls, env.scopes,
                                env.values.spread(block.body.body))
                flow = self.statements(block.body.body, flow, scope, inner_env, items)
                self.check_expects(frame, f"this call of `{name}`")
                return flow
            inner_env = Env(names, flow.shape, env.frames + (frame,), calls, env.scopes + (path,),
                            env.values.module(path, block.body.body))
            self.scope_blocks[path] = name
            sub: list = []
            flow = self.statements(block.body.body, flow, self.open_scope(path), inner_env, sub)
            items.append(SeqNode.model_construct(items=tuple(sub), scope=path, block=name, args=tuple(names.items()), span=item.span))
            self.check_expects(frame, f"this call of `{name}`")
        return flow


    # ---------------------------------------------------------------- layers
    def layer(self, item, kind_name: str, flow: Flow, env: Env, items: list, path: str) -> Flow:
        kind = REGISTRY[kind_name]
        resized = self.size_from_value(item, kind, flow, env) if kind.size_from_value else None
        if resized is False:
            return Flow(None, ())
        if resized is not None:
            item, size_from, size_name = resized
        bound = self.bind_layer(item, kind, env)
        if bound is None:
            return Flow(None, ())
        values, spans = bound
        span = item.span
        try:
            params = self.layer_figures.parameters(kind, values)
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
            out, counts, macs, window, notes = figures(params, flow.shape, kind)
        except LayerError as error:
            where = spans.get(error.arg, span) if error.arg else span
            self.error(error.code, error.message, where, label=error.label,
                       help=error.help, notes=(f"the input to `{kind_name}` is {describe_shape(flow.shape)}",))
            return Flow(None, ())
        for note in notes:
            self.error(note.code, note.message, spans.get(note.arg, span), help=note.help)
        self.check_activation(out, span)
        rf = layer_field(kind, params, flow.shape, out, window, flow.rf)
        if self.sharing:
            # a shared module's parameters and buffers are its first application's
            counts = count_state(())
        node_id = self.new_id()
        items.append(LayerNode.built(id=node_id, kind=kind_name, path=path, params=params, in_shape=flow.shape,
                                     out_shape=out, span=span, size_from=resized and size_from))
        self.add_row(Row(node_id, path, kind_name, out, counts.params, counts.buffers, macs, rf, len(env.scopes),
                         env.scopes, trainable=counts.trainable, line=span.line), env, span)
        if resized:
            # the value it takes the size of is read, as the summary says
            self.rows[-1].extra["reads"] = (size_name,)
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
            frame.layers += row.kind not in ("add", "concat", "mul") and not self.sharing
        self.check_params(env.frames[0].params, row.params, span)






