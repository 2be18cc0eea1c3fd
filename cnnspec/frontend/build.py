"""Lark parse tree -> surface IR (`cnnspec.ir`), with a `Span` on every node.

The transformer is non-recursive, so deeply nested input cannot overflow the stack here.
"""

from __future__ import annotations

from lark import Token, Tree
from lark.visitors import Transformer_NonRecursive, v_args

from cnnspec import ir

_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_int(text: str) -> int:
    return int(text.replace("_", ""))


def parse_quantity(text: str) -> float:
    """`5M` -> 5e6, `1.9G` -> 1.9e9, `61_706` -> 61706.

    >>> parse_quantity("1.9G"), parse_quantity("5M"), parse_quantity("61_706")
    (1900000000.0, 5000000.0, 61706.0)
    """
    text = text.replace("_", "")
    if text[-1] in _SUFFIX:
        return float(text[:-1]) * _SUFFIX[text[-1]]
    return float(text)


def build_spec(tree: Tree, path: str, text: str = "") -> ir.SpecFile:
    statements = _Builder(path, text).transform(tree)
    return ir.SpecFile(path=path, statements=tuple(statements))


@v_args(meta=True, inline=False)
class _Builder(Transformer_NonRecursive):
    def __init__(self, path: str, text: str = ""):
        super().__init__(visit_tokens=True)
        self.path = path
        self.source = text.splitlines()
        self._validate_span = ir.Span.__pydantic_validator__.validate_python
        # Lark wraps each `v_args` method anew on every lookup, once per tree node; bound once
        # here, the lookups find the instance's own attribute
        for name in dir(type(self)):
            if not name.startswith("__") and hasattr(getattr(type(self), name), "visit_wrapper"):
                setattr(self, name, getattr(self, name))

    # -- spans
    # A span per node: validated straight from a dict by pydantic-core, which is cheaper than
    # building one through the model's constructor (or even `model_construct`).
    def _span(self, meta) -> ir.Span:
        return self._validate_span({"file": self.path, "line": meta.line, "column": meta.column,
                                    "end_line": meta.end_line, "end_column": meta.end_column})

    def _tspan(self, token: Token) -> ir.Span:
        return self._validate_span({"file": self.path, "line": token.line, "column": token.column,
                                    "end_line": token.end_line, "end_column": token.end_column})

    # -- tokens: visit_tokens calls these with the token only
    @v_args(inline=False, meta=False)
    def INT(self, token):
        return ir.Num(value=parse_int(token), span=self._tspan(token))

    @v_args(inline=False, meta=False)
    def FLOAT(self, token):
        return ir.Num(value=float(token), span=self._tspan(token))

    @v_args(inline=False, meta=False)
    def DIMS(self, token):
        return ir.Dims(values=tuple(int(v) for v in token.split("x")), span=self._tspan(token))

    @v_args(inline=False, meta=False)
    def STRING(self, token):
        return ir.Str(value=token[1:-1], span=self._tspan(token))

    # -- statements
    def start(self, meta, children):
        return [c for c in children if c is not None]

    def body(self, meta, children):
        return tuple(c for c in children if c is not None)

    def network_decl(self, meta, children):
        return ir.NetworkDecl(name=str(children[0]), span=self._span(meta))

    def input_decl(self, meta, children):
        name, shape = children
        dims = shape.values if isinstance(shape, ir.Dims) else (int(shape.value),)
        return ir.InputDecl(name=str(name), dims=dims, span=self._span(meta), dims_span=shape.span)

    def block_def(self, meta, children):
        name, params, group = children
        return ir.BlockDef(name=str(name), params=params or (), body=group,
                           span=self._span(meta), name_span=self._tspan(name))

    def block_params(self, meta, children):
        return tuple(c for c in children if c is not None)

    def block_param(self, meta, children):
        name = children[0]
        default = children[1] if len(children) > 1 else None
        return ir.BlockParam(name=str(name), default=default, span=self._span(meta))

    def import_stmt(self, meta, children):
        return ir.Import(path=children[0].value, span=self._span(meta))

    def expect_shape(self, meta, children):
        name, shape = children
        dims = shape.values if isinstance(shape, ir.Dims) else (int(shape.value),)
        return ir.ExpectShape(metric=str(name), dims=dims, span=self._span(meta))

    def expect_metric(self, meta, children):
        name, op, quantity = children
        if isinstance(quantity, Token):
            value, text = parse_quantity(quantity), str(quantity)
        else:
            # the number as written, digit groups included: `expect params == 25_557_032`
            span = quantity.span
            written = self.source[span.line - 1][span.column - 1:span.end_column - 1] if span.line <= len(self.source) else ""
            value, text = float(quantity.value), written if span.end_line == span.line and written else _number_text(quantity.value)
        return ir.ExpectMetric(metric=str(name), op=str(op), value=value, text=text, span=self._span(meta))

    @v_args(inline=False, meta=False)
    def QUANTITY(self, token):
        return token

    # -- items
    def label_name(self, meta, children):
        return children[0]

    def item_stmt(self, meta, children):
        label, chain = children
        return ir.ItemStatement(label=str(label) if label is not None else None,
                                label_span=self._tspan(label) if label is not None else None,
                                chain=chain, span=self._span(meta))

    def chain(self, meta, children):
        return tuple(children)

    def repeat(self, meta, children):
        item, _star, count = children
        return ir.Repeat(item=item, count=count, span=self._span(meta))

    def bare_layer(self, meta, children):
        name = children[0]
        return ir.Layer(kind=str(name), span=self._span(meta), kind_span=self._tspan(name))

    def layer(self, meta, children):
        name, *args = children
        positional = tuple(a for a in args if not isinstance(a, ir.Option))
        options = tuple(a for a in args if isinstance(a, ir.Option))
        return ir.Layer(kind=str(name), args=positional, options=options,
                        span=self._span(meta), kind_span=self._tspan(name))

    def call(self, meta, children):
        name, *args = children
        args = [a for a in args if a is not None]
        positional = tuple(a for a in args if not isinstance(a, ir.Option))
        options = tuple(a for a in args if isinstance(a, ir.Option))
        return ir.Call(name=str(name), args=positional, options=options,
                       span=self._span(meta), name_span=self._tspan(name))

    def splice(self, meta, children):
        inner = children[1]
        if inner.node == "layer":
            return ir.Call(name=inner.kind, span=self._span(meta), name_span=inner.kind_span, splice=True)
        return ir.Call(name=inner.name, args=inner.args, options=inner.options, span=self._span(meta),
                       name_span=inner.name_span, splice=True)

    def option(self, meta, children):
        key, value = children
        return ir.Option(key=str(key), value=value, span=self._span(meta))

    kwarg = option

    def opt_key(self, meta, children):
        return children[0]

    def group(self, meta, children):
        return ir.Group(body=children[0], span=self._span(meta))

    def residual(self, meta, children):
        main, shortcut = children
        return ir.Residual(main=main, shortcut=shortcut, span=self._span(meta))

    def shortcut(self, meta, children):
        label, condition, group = children
        return ir.Shortcut(label=str(label) if label is not None else None,
                           label_span=self._tspan(label) if label is not None else None,
                           condition=condition, body=group, span=self._span(meta))

    def condition(self, meta, children):
        return children[0]

    def concat(self, meta, children):
        *flags, group = children
        return ir.Concat(flags=tuple(str(f) for f in flags), body=group, span=self._span(meta))

    def add(self, meta, children):
        return ir.Add(body=children[0], span=self._span(meta))

    def scale(self, meta, children):
        return ir.Scale(body=children[0], span=self._span(meta))

    def when(self, meta, children):
        condition, then, otherwise = children
        return ir.When(condition=condition, then=then, otherwise=otherwise, span=self._span(meta))

    # -- expressions
    def or_op(self, meta, children):
        return ir.BinOp(op="or", left=children[0], right=children[1], span=self._span(meta))

    def and_op(self, meta, children):
        return ir.BinOp(op="and", left=children[0], right=children[1], span=self._span(meta))

    def not_op(self, meta, children):
        return ir.UnaryOp(op="not", operand=children[0], span=self._span(meta))

    def binop(self, meta, children):
        left, op, right = children
        return ir.BinOp(op=str(op), left=left, right=right, span=self._span(meta))

    def neg(self, meta, children):
        return ir.UnaryOp(op="-", operand=children[1], span=self._span(meta))

    def true(self, meta, children):
        return ir.Bool(value=True, span=self._span(meta))

    def false(self, meta, children):
        return ir.Bool(value=False, span=self._span(meta))

    def ref(self, meta, children):
        name, attr = (children + [None])[:2]
        return ir.Ref(name=str(name), attr=str(attr) if attr is not None else None, span=self._span(meta))

    def func(self, meta, children):
        name, *args = children
        return ir.Func(name=str(name), args=tuple(a for a in args if a is not None), span=self._span(meta))

    def tuple(self, meta, children):
        return ir.TupleLit(items=tuple(c for c in children if c is not None), span=self._span(meta))

    def list(self, meta, children):
        return ir.ListLit(items=tuple(c for c in children if c is not None), span=self._span(meta))


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
