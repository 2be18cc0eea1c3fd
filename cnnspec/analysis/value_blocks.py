"""Blocks over several values: `block fuse(c, hi, lo) -> (h2, l2) { ... }`, `(h, l) = fuse(32, a, b)`.

A parameter the block's body reads as a value (`hi -> ...`, `add(hi, lo)`) is a value parameter:
a call passes it the name of a value bound where the call stands, and the body reads that value
under the parameter's name. `-> (h2, l2)` returns the values the body binds under those names, in
order: a call of a block returning several is the whole chain of a statement binding as many names
(`(h, l) = fuse(...)`); a block returning one flows on with it, as any block does with what leaves
its last item.

Such a call computes its values in the caller's module (they may be read together, as no single
tensor leaves it), its layers keep the call's label scope (`fuse1.0.weight`) as a block call's do:
the call's scope is a container of its layers, not a module with a `forward` of its own. Spread
with `*` (`(h, l) = *fuse(8, a, b)`), its layers take the next positions of the enclosing scope
instead, as those of an ordinary block spread do (`nn.Sequential(*layers)`).

Diagnostics: bindings in a number other than the values returned, or a block returning several
called without binding them, is E154; a value passed where an expression is expected, or an
expression where a value is, E155; a returned name the body never binds, E156.
"""

from __future__ import annotations

from cnnspec import ir
from cnnspec.analysis.context import Env, Flow, Frame, Reporting, Scope, Site
from cnnspec.analysis.expressions import item_name
from cnnspec.analysis.values import Value, value_parameters
from cnnspec.codes import Code
from cnnspec.diagnostics import Label
from cnnspec.graph import SeqNode
from cnnspec.wording import closest, counted


class ValueBlocks(Reporting):
    """Passing values to blocks and binding the values they return."""

    #: the names a statement `(h, l) = ...` binds, while its chain is elaborated; taken by the call
    #: of the block that returns them
    tuple_binding: tuple[ir.ValueName, ...] | None = None
    #: the values the last call of a block with `-> (...)` returned, and the scope of that call
    returned: list[Value] | None = None
    returned_by: str | None = None
    blocks: dict[str, ir.BlockDef]
    #: each block's value parameters, by the id of its definition
    value_params: dict[int, frozenset[str]]

    #: `use exchange(h2, l2)`: the values the labelled call applied again is passed, by value
    #: parameter, in place of its own arguments; taken by that call's binding
    applied_to: dict[str, Value] | None = None

    def find_value_params(self) -> None:
        self.value_params = {id(block): value_parameters(block) for block in self.blocks.values()}

    def is_value_block(self, block: ir.BlockDef) -> bool:
        """Whether calls of `block` are elaborated in the caller's module: it returns named values or takes some."""
        return bool(block.returns) or bool(self.value_params[id(block)])

    def pass_argument(self, block: ir.BlockDef, param: ir.BlockParam, expr, env: Env,
                      passed: dict[str, Value]) -> bool:
        """For a value parameter, the value `expr` names, stored in `passed`; for any other, a check
        that `expr` is not a value's name. False once a mistake is reported."""
        is_name = expr.node == "ref" and expr.attr is None
        if self.applied_to and param.name in self.applied_to:
            passed[param.name] = self.applied_to.pop(param.name)
            if not self.applied_to:
                self.applied_to = None
            return True
        if param.name in self.value_params[id(block)]:
            if not is_name or expr.name in env.names:
                self.error(Code.VALUE_ARGUMENT_MISMATCH, f"`{block.name}` reads `{param.name}` as a value, and is "
                                                         "passed an expression", expr.span, label="not a named value",
                           labels=(Label(span=param.span, message="a value parameter: its body reads it as a value"),),
                           help="pass the name of a value bound above the call, such as `a` in `a = conv 16 3x3`")
                return False
            value = self.read_value(ir.ValueName(name=expr.name, span=expr.span), env)
            if value is None:
                return False
            passed[param.name] = value
            return True
        if is_name and expr.name not in env.names and expr.name in env.values.bound:
            self.error(Code.VALUE_ARGUMENT_MISMATCH, f"`{expr.name}` is a named value, and `{block.name}`'s "
                                                     f"parameter `{param.name}` takes an expression", expr.span,
                       label="a tensor, not a number", labels=(Label(span=param.span, message="an expression parameter"),),
                       help=f"pass a number, or read `{param.name}` inside the block as a value "
                            f"(`{param.name} -> ...`) to pass it a tensor")
            return False
        return True

    def value_block_call(self, item, block: ir.BlockDef, names: dict, passed: dict[str, Value], scope: Scope,
                         path: str | None, flow: Flow, env: Env, items: list, frame: Frame, calls) -> Flow:
        """A call of a block over values: its body elaborated in the caller's module with the values
        passed bound under their parameters' names, its layers under `path`, or with `path` None (a
        call spread with `*`) at the next positions of `scope`, as a spread block's are."""
        wanted, self.tuple_binding = self.tuple_binding, None
        if len(block.returns) > 1 and wanted is None:
            self.unbound_returns(block, item.span, f"{block.name}(...)")
            return Flow(None, ())
        # keyed as the caller's own values: they are computed in its module
        values = env.values.spread(block.body.body)
        for name, value in passed.items():
            values.bound[name] = Value(name, value.key, value.flow, value.span, used=True)
        scopes = env.scopes if path is None else env.scopes + (path,)
        inner_env = Env(names, flow.shape, env.frames + (frame,), calls, scopes, values)
        sub: list = []
        first_row = len(self.rows)
        if path is not None:
            self.scope_blocks[path] = block.name
            scope = self.open_scope(path)
        with self.inside(Site(item.span)):
            flow = self.statements(block.body.body, flow, scope, inner_env, sub)
            self.check_expects(frame, f"this call of `{block.name}`")
        if len(self.rows) > first_row and passed:
            # folded into one row (`summary --depth`), the call reads the caller's values, not its parameters
            self.rows[first_row].extra["call_reads"] = (path, tuple(value.name for value in passed.values()))
        if not block.returns:
            items.append(SeqNode.model_construct(items=tuple(sub)))
            return flow
        returned = []
        for name in block.returns:
            value = values.bound.get(name.name)
            if value is None:
                if self.once(Code.UNBOUND_RETURN, name.span):
                    self.error(Code.UNBOUND_RETURN, f"`{block.name}` returns `{name.name}`, which its body never binds",
                               name.span, label="not bound in the block",
                               help=f"did you mean `{near}`?" if (near := closest(name.name, list(values.bound)))
                               else f"bind it in the body: `{name.name} = ...`")
                return Flow(None, ())
            value.used = True
            returned.append(value)
        # the last value returned is the tensor that flows on
        items.append(SeqNode.model_construct(items=(*sub, SeqNode.model_construct(items=(), source=returned[-1].key))))
        self.returned, self.returned_by = returned, path
        return returned[-1].flow

    def unbound_returns(self, block: ir.BlockDef, span: ir.Span, written: str) -> None:
        """E154 at a call (or an application again, `use exchange(h2, l2)`) whose values are not bound."""
        self.error(Code.RETURNS_MISMATCH, f"`{block.name}` returns {len(block.returns)} values, and they are "
                                          "not bound", span, label="values not bound",
                   labels=(Label(span=block.name_span, message=f"returns {returns_text(block)}"),),
                   help=f"bind them: `({', '.join(r.name for r in block.returns)}) = {written}`")

    def tuple_binding_statement(self, st: ir.ItemStatement, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        """`(h, l) = fuse(...)`: the values the call returns bound to the names, in order."""
        first, last = st.bindings[0].span, st.bindings[-1].span
        where = first.to(last)
        bound = counted(len(st.bindings), "name") + (" is" if len(st.bindings) == 1 else " are")
        target = self.returning_block(st, scope, env)
        if target is None:
            self.error(Code.RETURNS_MISMATCH, f"{bound} bound in brackets, and only a call of a block returning "
                                              "several values gives them", where,
                       label=f"{counted(len(st.bindings), 'name')} bound",
                       help="call a block declared with `-> (a, b)` alone in the statement, or bind one name: "
                            f"`{st.bindings[0].name} = ...`")
        elif len(target.returns) != len(st.bindings):
            self.error(Code.RETURNS_MISMATCH, f"{bound} bound, and `{target.name}` returns "
                                              f"{counted(len(target.returns), 'value')}", where,
                       label=counted(len(st.bindings), "name"),
                       labels=(Label(span=target.name_span, message=f"returns {returns_text(target)}"),))
        # the chain is elaborated even so, for its own mistakes and the values it reads
        self.tuple_binding, self.returned = (st.bindings if target is not None else None), None
        first_row = len(self.rows)
        try:
            flow = self.item_statement(st.model_copy(update={"bindings": ()}), flow, scope, env, items)
        finally:
            self.tuple_binding = None
        returned, self.returned = self.returned, None
        if target is None or returned is None or len(returned) != len(st.bindings) or flow.shape is None:
            # bound even so, without a shape, so that neither their readers nor their not being
            # read is reported on top
            for name in st.bindings:
                self.bind_value(name, Flow(None, ()), env)
                env.values.bound[name.name].used = True
            return Flow(None, ())
        for name, value in zip(st.bindings, returned):
            self.bind_alias(name, value, env)
        if len(self.rows) > first_row:
            self.rows[-1].extra["call_binds"] = (self.returned_by, ", ".join(name.name for name in st.bindings))
        return flow

    def returning_block(self, st: ir.ItemStatement, scope: Scope, env: Env) -> ir.BlockDef | None:
        """The block a statement's chain calls alone, or applies again (`use exchange(h2, l2)`), if
        it returns named values."""
        if len(st.chain) != 1 or st.chain[0].node not in ("call", "layer", "use"):
            return None
        item = st.chain[0]
        if item.node == "use":
            block = self.value_block_of(self.definitions.get(scope.join(item.label)))
        else:
            block = self.blocks.get(item_name(item.name if item.node == "call" else item.kind, env.names))
        return block if block is not None and block.returns else None

    def value_block_of(self, definition) -> ir.BlockDef | None:
        """The block over values a labelled module's first application calls, if it is such a call."""
        if definition is None or len(definition.chain) != 1 or definition.chain[0].node not in ("call", "layer"):
            return None
        item = definition.chain[0]
        block = self.blocks.get(item_name(item.name if item.node == "call" else item.kind, definition.env.names))
        return block if block is not None and self.is_value_block(block) else None

    def values_applied_again(self, item: ir.Use, definition, block: ir.BlockDef | None,
                             env: Env) -> dict[str, Value] | None:
        """`use exchange(h2, lo=l2)`: the values read where the `use` stands, by the value parameter of
        the labelled call's block each is passed to (by position in the block's order, or by name); the
        expression parameters keep the call's arguments, as its parameters keep their shapes. None
        once a mistake is reported (E120)."""
        where = item.label_span
        if block is None:
            for name in item.values:
                self.read_value(name, env)
            self.error(Code.BAD_BLOCK_CALL, f"`{item.label}` takes the tensor flowing in, and `use` passes it values",
                       item.span, label="values passed", labels=(Label(span=definition.span, message="defined here"),),
                       help=f"only a labelled call of a block over values is applied to values: write "
                            f"`{item.values[0].name} -> use {item.label}`")
            return None
        params = [p.name for p in block.params if p.name in self.value_params[id(block)]]
        call = definition.chain[0]
        listed = ", ".join(f"`{p}`" for p in params)
        if not item.values and params:
            self.error(Code.BAD_BLOCK_CALL, f"`{item.label}` is a call of `{block.name}`, which reads the values "
                                            f"{listed}, and `use` passes none", item.span,
                       label="no values to apply it to", labels=(Label(span=call.span, message="first applied here"),),
                       help=f"name the values to apply it to again: `use {item.label}({', '.join(params)})`")
            return None
        chosen: dict[str, Value] = {}
        ok = True
        for position, (key, name) in enumerate(zip(item.keys, item.values)):
            param = key if key is not None else (params[position] if position < len(params) else None)
            if param is None or param not in params or param in chosen:
                if param is None:
                    message = f"`{block.name}` reads {len(params)} value{'s' * (len(params) != 1)} ({listed}), and " \
                              f"`use {item.label}` passes {len(item.values)}"
                elif param in chosen:
                    message = f"the value parameter `{param}` is passed twice"
                elif any(p.name == param for p in block.params):
                    message = (f"`{param}` is an expression parameter of `{block.name}`: an application again keeps "
                               "the first one's, as its parameters keep their shapes")
                else:
                    message = f"`{block.name}` has no value parameter `{param}`"
                self.error(Code.BAD_BLOCK_CALL, message, name.span, label="not a value parameter to pass",
                           labels=(Label(span=block.name_span, message=f"reads the values {listed}"),),
                           help=f"pass one value for each of {listed}, by position or as `{params[0]}=...`"
                           if params else f"`{block.name}` reads no values: write `use {item.label}`")
                ok = False
                continue
            value = self.read_value(name, env)
            if value is None:
                ok = False
                continue
            chosen[param] = value
        missing = [p for p in params if p not in chosen]
        if ok and missing:
            self.error(Code.BAD_BLOCK_CALL, f"`use {item.label}` passes no value for `{missing[0]}`", where,
                       label="applied again", labels=(Label(span=block.name_span, message=f"reads the values {listed}"),),
                       help=f"pass one value for each of {listed}: `use {item.label}({', '.join(params)})`")
            ok = False
        if ok and len(block.returns) > 1 and self.tuple_binding is None:
            self.unbound_returns(block, item.span, f"use {item.label}(...)")
            ok = False
        return chosen if ok else None


def returns_text(block: ir.BlockDef) -> str:
    return ", ".join(f"`{r.name}`" for r in block.returns)
