"""The elaborator's named values: `p4 = l4 -> conv 256 3x3` and `add(a, b)`.

A statement may bind its output to a name (`c2 = layer1: ...`; the tensor flows on as well) and
may start from a named value instead of the tensor flowing in (`c2 -> conv 256 1x1`); `add`,
`scale` and `concat [crop]` with operands in parentheses join named values (the incoming
tensor is not used). Where a value can be read is `cnnspec.analysis.values`' rule.

Diagnostics: reading a value that is not bound where it is read is E150, and E151 when its
module binds it further down; a value bound and never read is W002, and binding a name again
in one module (hiding the first value from what follows) is W003.
"""

from __future__ import annotations

from cnnspec import ir
from cnnspec.analysis.context import Env, Flow, Reporting, Scope, keyword_span
from cnnspec.analysis.merges import broadcast_all, concat_shape
from cnnspec.analysis.values import Value, Values
from cnnspec.codes import Code
from cnnspec.diagnostics import Label
from cnnspec.graph import SeqNode
from cnnspec.layers.base import describe_shape
from cnnspec.wording import closest

#: a value merge's operator -> the graph's merge operation
MERGE_OPS = {"add": "add", "scale": "mul", "concat": "concat"}


class Dataflow(Reporting):
    """Binding, reading and merging named values."""

    #: every value bound, in order: the unused ones are reported once elaboration ends
    bound_values: list[Value]
    #: the names of values read where none was bound
    misread: set[str]
    rows: list

    def top_values(self, input_decls, flows: list[Flow], statements) -> Values:
        """The network's module: each input is a value under its name."""
        values = Values("", tuple(statements))
        for decl, flow in zip(input_decls, flows):
            value = Value(decl.name, values.new_key(decl.name), flow, decl.span, is_input=True)
            values.bound[decl.name] = values.bound_inputs[decl.name] = value
        return values

    def input_binding(self, values: Values, input_name: str) -> list:
        """The items that store the first input, the tensor flowing in, under its key when the spec
        reads it (the backends store the other inputs under theirs before the network runs)."""
        value = values.bound_inputs[input_name]
        return [SeqNode.model_construct(items=(), bind=value.key)] if value.used else []

    def report_unused_inputs(self, values: Values, later_inputs) -> None:
        """W004 at an input after the first that nothing reads: only the first flows in unnamed."""
        for decl in later_inputs:
            if not values.bound_inputs[decl.name].used:
                self.error(Code.UNUSED_INPUT, f"input `{decl.name}` is never read", decl.span, label="declared here",
                           help=f"read it by name (`{decl.name} -> ...`, `add({decl.name}, ...)`), or drop the "
                                "declaration: only the first input flows into the first statement")

    def dataflow_statement(self, st: ir.ItemStatement, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        """`name = source -> chain`: the chain elaborated from the source, its output bound."""
        source_key = None
        if st.source is not None:
            value = self.read_value(st.source, env)
            flow = value.flow if value is not None else Flow(None, ())
            source_key = value.key if value is not None else None
        sub: list = []
        first_row = len(self.rows)
        flow = self.item_statement(st.model_copy(update={"binding": None, "source": None}), flow, scope, env, sub)
        bind_key = self.bind_value(st.binding, flow, env) if st.binding is not None else None
        if len(self.rows) > first_row:
            # the summary says which value a row reads and which it binds
            if st.source is not None:
                row = self.rows[first_row]
                row.extra["reads"] = (st.source.name, *row.extra.get("reads", ()))
            if st.binding is not None:
                self.rows[-1].extra["binds"] = st.binding.name
        items.append(SeqNode.model_construct(items=tuple(sub), source=source_key, bind=bind_key))
        return flow

    def bind_alias(self, name: ir.ValueName, value: Value, env: Env) -> str:
        """`name` bound to a value computed elsewhere in this module (one a block call returned)."""
        return self.bind_value(name, value.flow, env, key=value.key)

    def bind_value(self, name: ir.ValueName, flow: Flow, env: Env, key: str | None = None) -> str:
        values = env.values
        previous = values.bound.get(name.name)
        # a repeat's copies bind again at the same place: that is not shadowing
        if previous is not None and previous.span != name.span and self.once(Code.SHADOWED_VALUE, name.span):
            where = "the network's input" if previous.is_input else f"its value from line {previous.span.line}"
            self.error(Code.SHADOWED_VALUE, f"`{name.name}` is bound again, hiding {where}", name.span,
                       label="bound again", labels=(Label(span=previous.span, message="first bound here"),),
                       help=f"give the new value another name, such as `{name.name}2`")
        value = Value(name.name, key or values.new_key(name.name), flow, name.span)
        values.bound[name.name] = value
        self.bound_values.append(value)
        return value.key

    def read_value(self, name: ir.ValueName, env: Env) -> Value | None:
        """The value `name` reads, marked used; `None`, reported, when there is none."""
        values = env.values
        value = values.bound.get(name.name)
        if value is not None:
            value.used = True
            return value
        # the value a failed read meant is not reported unused on top
        self.misread.add(name.name)
        later = values.bound_later(name.name, name.span)
        if later is not None:
            self.error(Code.VALUE_BEFORE_BINDING, f"value `{name.name}` is read before it is bound", name.span,
                       label="read here", labels=(Label(span=later, message="bound here, further down"),),
                       help="move the statement that binds it above this one")
            return None
        outer = values.outer
        while outer is not None and name.name not in outer.bound:
            outer = outer.outer
        if outer is not None:
            self.error(Code.UNKNOWN_VALUE, f"no value `{name.name}` here: it is bound outside this labelled "
                                           "group or block", name.span, label="not visible here",
                       labels=(Label(span=outer.bound[name.name].span, message="bound here"),),
                       help="a labelled group or a block is a module of its own and reads only its input: "
                            "read the value where it is bound, or pass it in as the group's input "
                            f"(`{name.name} -> label: ...`)")
            return None
        near = closest(name.name, list(values.bound))
        self.error(Code.UNKNOWN_VALUE, f"no value `{name.name}` is bound", name.span, label="not a named value",
                   help=f"did you mean `{near}`?" if near else f"bind one first: `{name.name} = ...`")
        return None

    def size_from_value(self, item, kind, flow: Flow, env: Env):
        """`upsample size=c1`: the option that may name a value (`kind.size_from_value`) names one,
        not a block parameter, so the layer takes that value's spatial size (its channels are the
        layer's own). Returns the item with the size written out, the value's key and its name;
        `None` where the option names no value; `False` once a failed read is reported."""
        option = next((o for o in getattr(item, "options", ()) if o.key == kind.size_from_value), None)
        ref = option.value if option is not None else None
        if ref is None or ref.node != "ref" or ref.attr is not None or ref.name in env.names:
            return None
        value = self.read_value(ir.ValueName(name=ref.name, span=ref.span), env)
        if value is None or value.flow.shape is None or flow.shape is None:
            return False
        target = value.flow.shape
        if len(target) != len(flow.shape) or len(target) < 2:
            dims = len(flow.shape) - 1
            self.error(Code.WRONG_INPUT_RANK, f"`{ref.name}` is {describe_shape(target)}, and `{kind.name}` "
                                              f"resizes its input {describe_shape(flow.shape)} to the spatial size "
                                              "of a map of the same rank", ref.span,
                       label=f"{len(target) - 1} spatial dimensions, the input has {dims}",
                       help=f"name a value with {dims} spatial dimension{'s' if dims != 1 else ''}, or give the "
                            f"size: `{option.key}={'x'.join(['14'] * max(dims, 1))}`")
            return False
        written = ir.Dims(values=target[1:], span=ref.span)
        options = tuple(o.model_copy(update={"value": written}) if o is option else o for o in item.options)
        return item.model_copy(update={"options": options}), value.key, ref.name

    def value_merge(self, item: ir.ValueMerge, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        """`add(a, b)` sums with broadcasting, `scale(x, gate)` multiplies with broadcasting,
        `concat [crop] (a, b)` joins along channels. An operand that is a chain from a value
        (`add(hi, lo -> conv 8 1x1)`) is elaborated as the statement `lo -> conv 8 1x1` would be,
        its layers at the next positions of the scope, before the merge."""
        keyword = keyword_span(item.span, item.op)
        for flag in item.flags:
            if flag != "crop":
                self.error(Code.UNKNOWN_OPTION, f"`concat` has no option `{flag}`", keyword,
                           help="`concat crop(a, b)` center-crops larger maps to the smallest")
                return Flow(None, ())
        branches, labels = [], []
        for operand, chain in zip(item.operands, item.chains or (None,) * len(item.operands)):
            if chain is None:
                value = self.read_value(operand, env)
                reached = value.flow if value is not None else Flow(None, ())
                branch = [SeqNode.model_construct(items=(), source=value.key)] if value is not None else []
                described, where = f"`{operand.name}`", operand.span
            else:
                branch = []
                reached = self.dataflow_statement(chain, flow, scope, env, branch)
                described, where = f"`{operand.name} -> ...`", chain.span
            branches.append((branch, reached))
            if reached.shape is not None:
                labels.append(Label(span=where, message=f"{described} is {describe_shape(reached.shape)}"))
        if any(reached.shape is None for _, reached in branches):
            return Flow(None, ())
        if len(item.operands) < 2:
            self.error(Code.EMPTY_STRUCTURE, f"`{item.op}` joins two or more values, and has one", item.span,
                       label="one operand", help=f"name another value: `{item.op}(a, b)`")
            return Flow(None, ())
        shapes = [reached.shape for _, reached in branches]
        labels = tuple(labels)
        listed = ", ".join(describe_shape(s) for s in shapes)
        crop = "crop" in item.flags
        if item.op == "concat":
            out, problem = concat_shape(shapes, crop)
            if problem:
                self.error(Code.CONCAT_MISMATCH, f"concat operands disagree: {listed}", keyword, label=problem,
                           labels=labels, help="concat joins along channels; every other dimension must agree. "
                                               "`concat crop(a, b)` center-crops the larger maps")
                return Flow(None, ())
        else:
            out = broadcast_all(shapes)
            if out is None:
                code = Code.ADD_MISMATCH if item.op == "add" else Code.SCALE_MISMATCH
                self.error(code, f"{item.op} operands do not broadcast: {listed}", keyword,
                           label="joined here", labels=labels,
                           help="each dimension must be equal, or 1 in all but one operand (a 64x1x1 gate "
                                "scales a 64x28x28 map)")
                return Flow(None, ())
        flow = self.merge(MERGE_OPS[item.op], branches, flow, out, item.span, env, items, crop=crop)
        self.rows[-1].extra["reads"] = tuple(o.name for o in item.operands)
        return flow

    def output_decl(self, st: ir.OutputDecl, env: Env) -> None:
        """`output a, b`: what the network returns, each value read where the declaration stands."""
        if self.output_span is not None:
            self.error(Code.REPEATED_DECLARATION, "`output` is declared twice", st.span, label="second declaration",
                       labels=(Label(span=self.output_span, message="first declared here"),),
                       help="name every output in one `output` declaration")
            return
        self.output_span = st.span
        seen: dict[str, ir.Span] = {}
        for returned, name in zip(st.returned(), st.names):
            if returned in seen:
                self.error(Code.REPEATED_DECLARATION, f"`{returned}` is an output twice", name.span,
                           label="second time", labels=(Label(span=seen[returned], message="first here"),))
                continue
            if not returned:
                self.read_value(name, env)
                self.error(Code.INVALID_LABEL, "an output needs a name", name.span, label="returned as \"\"",
                           help=f"name it: `\"0\"={name.name}`, or leave the name out to return it as `{name.name}`")
                continue
            seen[returned] = name.span
            value = self.read_value(name, env)
            if value is not None and value.flow.shape is not None:
                self.outputs.append((returned, value))

    def report_unused_values(self) -> None:
        """W002 at each binding none of whose values was read (a block's, in none of its calls)."""
        used = {value.span for value in self.bound_values if value.used}
        for value in self.bound_values:
            if value.span not in used and value.name not in self.misread and self.once(Code.UNUSED_VALUE, value.span):
                self.error(Code.UNUSED_VALUE, f"value `{value.name}` is never read",
                           value.span, label="bound here",
                           help="read it (`name -> ...`, `add(name, ...)`), or drop the binding")

    def once(self, code: Code, span: ir.Span) -> bool:
        """Whether `code` at `span` is new: a block's body is elaborated once per call."""
        key = (code, span)
        if key in self.reported:
            return False
        self.reported.add(key)
        return True
