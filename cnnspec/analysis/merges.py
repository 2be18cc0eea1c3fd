"""Merges: `residual`, `concat`, `add` and `scale` elaborate their branches on the same input and
join them, with the shape rules of each join (numpy broadcasting for adds and products, the
channel axis for concatenation, optionally center-cropped) and the diagnostics of branches that
disagree or hold no layers.
"""

from __future__ import annotations

from cnnspec import ir
from cnnspec.analysis.context import Env, Flow, Reporting, Scope, keyword_span
from cnnspec.analysis.expressions import Word
from cnnspec.analysis.stats import Row, merge_fields
from cnnspec.codes import Code
from cnnspec.diagnostics import Label
from cnnspec.graph import MergeNode, SeqNode, walk
from cnnspec.layers.base import describe_shape


def has_layers(items) -> bool:
    """Whether elaborated items hold a layer or a merge anywhere (an empty group or block holds none)."""
    return any(node.node != "seq" for item in items for node in walk(item))


def is_when(statement) -> bool:
    """A statement that is a `when` (labelled or not), alone."""
    return statement.node == "items" and len(statement.chain) == 1 and statement.chain[0].node == "when"


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


def broadcast_all(shapes) -> tuple[int, ...] | None:
    """The shape that all of `shapes` broadcast to, or `None`."""
    out = shapes[0]
    for s in shapes[1:]:
        out = broadcast(out, s) if out is not None else None
    return out


def concat_shape(shapes, crop: bool) -> tuple[tuple[int, ...], str | None]:
    """The shape of a concatenation along channels, and what is wrong when the others disagree:
    channels summed; with `crop`, each spatial size the smallest one's.

    >>> concat_shape([(64, 28, 28), (32, 28, 28)], False), concat_shape([(8, 9, 9), (8, 7, 7)], True)
    (((96, 28, 28), None), ((16, 7, 7), None))
    """
    if len({len(s) for s in shapes}) > 1:
        return (), "they have different ranks"
    channels = sum(s[0] for s in shapes)
    if crop:
        return (channels, *(min(s[i] for s in shapes) for i in range(1, len(shapes[0])))), None
    problem = "their spatial sizes differ" if len({s[1:] for s in shapes}) > 1 else None
    return (channels, *shapes[0][1:]), problem


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


class Merges(Reporting):
    """The elaborator's merges."""

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
                inner, sub = self.open_scope(path), []
                shortcut = self.statements(short.body.body, flow, inner,
                                           Env(env.names, env.in_shape, env.frames, env.calls, env.scopes + (path,),
                                               env.values.module(path, short.body.body)), sub)
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
            out = broadcast_all(shapes)
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
        out, problem = concat_shape(shapes, crop)
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
