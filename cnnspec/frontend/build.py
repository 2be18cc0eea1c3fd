"""Lark parse tree -> surface IR (`cnnspec.ir`), with a `Span` on every node.

The transformer is non-recursive, so deeply nested input cannot overflow the stack here.
It builds plain dicts and tuples, and the whole file is validated into IR models once, at
the root: one validator for the whole tree (built once per process) instead of one per
node class, and one call into pydantic-core instead of one per node.
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
    return ir.SpecFile.model_validate({"path": path, "statements": statements})


def _is_option(child: dict) -> bool:
    # expressions carry their `node` tag (the unions' discriminator); options have none
    return "node" not in child


@v_args(meta=True, inline=False)
class _Builder(Transformer_NonRecursive):
    def __init__(self, path: str, text: str = ""):
        super().__init__(visit_tokens=True)
        self.path = path
        self.source = text.splitlines()
        # Lark wraps each `v_args` method anew on every lookup, once per tree node; bound once
        # here, the lookups find the instance's own attribute
        for name in dir(type(self)):
            if not name.startswith("__") and hasattr(getattr(type(self), name), "visit_wrapper"):
                setattr(self, name, getattr(self, name))

    # -- spans
    def _span(self, meta) -> dict:
        return {"file": self.path, "line": meta.line, "column": meta.column,
                "end_line": meta.end_line, "end_column": meta.end_column}

    def _tspan(self, token: Token) -> dict:
        return {"file": self.path, "line": token.line, "column": token.column,
                "end_line": token.end_line, "end_column": token.end_column}

    # -- tokens: visit_tokens calls these with the token only
    @v_args(inline=False, meta=False)
    def INT(self, token):
        return {"node": "num", "value": parse_int(token), "span": self._tspan(token)}

    @v_args(inline=False, meta=False)
    def FLOAT(self, token):
        return {"node": "num", "value": float(token), "span": self._tspan(token)}

    @v_args(inline=False, meta=False)
    def DIMS(self, token):
        return {"node": "dims", "values": tuple(int(v) for v in token.split("x")), "span": self._tspan(token)}

    @v_args(inline=False, meta=False)
    def STRING(self, token):
        return {"node": "str", "value": token[1:-1], "span": self._tspan(token)}

    # -- statements
    def start(self, meta, children):
        return [c for c in children if c is not None]

    def body(self, meta, children):
        return tuple(c for c in children if c is not None)

    def network_decl(self, meta, children):
        return {"node": "network", "name": str(children[0]), "span": self._span(meta)}

    def input_decl(self, meta, children):
        name, shape = children
        return {"node": "input", "name": str(name), "dims": _dims(shape), "span": self._span(meta),
                "dims_span": shape["span"]}

    def block_def(self, meta, children):
        name, params, group = children
        return {"node": "block", "name": str(name), "params": params or (), "body": group,
                "span": self._span(meta), "name_span": self._tspan(name)}

    def block_params(self, meta, children):
        return tuple(c for c in children if c is not None)

    def block_param(self, meta, children):
        name = children[0]
        default = children[1] if len(children) > 1 else None
        return {"name": str(name), "default": default, "span": self._span(meta)}

    def import_stmt(self, meta, children):
        return {"node": "import", "path": children[0]["value"], "span": self._span(meta)}

    def expect_shape(self, meta, children):
        name, shape = children
        return {"node": "expect_shape", "metric": str(name), "dims": _dims(shape), "span": self._span(meta)}

    def expect_metric(self, meta, children):
        name, op, quantity = children
        if isinstance(quantity, Token):
            value, text = parse_quantity(quantity), str(quantity)
        else:
            # the number as written, digit groups included: `expect params == 25_557_032`
            span = quantity["span"]
            line = span["line"]
            written = self.source[line - 1][span["column"] - 1:span["end_column"] - 1] if line <= len(self.source) else ""
            value = float(quantity["value"])
            text = written if span["end_line"] == line and written else _number_text(quantity["value"])
        return {"node": "expect_metric", "metric": str(name), "op": str(op), "value": value, "text": text,
                "span": self._span(meta)}

    @v_args(inline=False, meta=False)
    def QUANTITY(self, token):
        return token

    # -- items
    def label_name(self, meta, children):
        return children[0]

    def item_stmt(self, meta, children):
        label, chain = children
        return {"node": "items", "label": str(label) if label is not None else None,
                "label_span": self._tspan(label) if label is not None else None,
                "chain": chain, "span": self._span(meta)}

    def chain(self, meta, children):
        return tuple(children)

    def repeat(self, meta, children):
        item, _star, count = children
        return {"node": "repeat", "item": item, "count": count, "span": self._span(meta)}

    def bare_layer(self, meta, children):
        name = children[0]
        return {"node": "layer", "kind": str(name), "span": self._span(meta), "kind_span": self._tspan(name)}

    def layer(self, meta, children):
        name, *args = children
        return {"node": "layer", "kind": str(name),
                "args": tuple(a for a in args if not _is_option(a)),
                "options": tuple(a for a in args if _is_option(a)),
                "span": self._span(meta), "kind_span": self._tspan(name)}

    def call(self, meta, children):
        name, *args = children
        args = [a for a in args if a is not None]
        return {"node": "call", "name": str(name),
                "args": tuple(a for a in args if not _is_option(a)),
                "options": tuple(a for a in args if _is_option(a)),
                "span": self._span(meta), "name_span": self._tspan(name)}

    def splice(self, meta, children):
        inner = children[1]
        if inner["node"] == "layer":
            return {"node": "call", "name": inner["kind"], "span": self._span(meta),
                    "name_span": inner["kind_span"], "splice": True}
        return {**inner, "span": self._span(meta), "splice": True}

    def option(self, meta, children):
        key, value = children
        return {"key": str(key), "value": value, "span": self._span(meta)}

    kwarg = option

    def opt_key(self, meta, children):
        return children[0]

    def group(self, meta, children):
        return {"node": "group", "body": children[0], "span": self._span(meta)}

    def residual(self, meta, children):
        main, shortcut = children
        return {"node": "residual", "main": main, "shortcut": shortcut, "span": self._span(meta)}

    def shortcut(self, meta, children):
        label, condition, group = children
        return {"label": str(label) if label is not None else None,
                "label_span": self._tspan(label) if label is not None else None,
                "condition": condition, "body": group, "span": self._span(meta)}

    def condition(self, meta, children):
        return children[0]

    def concat(self, meta, children):
        *flags, group = children
        return {"node": "concat", "flags": tuple(str(f) for f in flags), "body": group, "span": self._span(meta)}

    def add(self, meta, children):
        return {"node": "add", "body": children[0], "span": self._span(meta)}

    def scale(self, meta, children):
        return {"node": "scale", "body": children[0], "span": self._span(meta)}

    def when(self, meta, children):
        condition, then, otherwise = children
        return {"node": "when", "condition": condition, "then": then, "otherwise": otherwise,
                "span": self._span(meta)}

    # -- expressions
    def or_op(self, meta, children):
        return {"node": "binop", "op": "or", "left": children[0], "right": children[1], "span": self._span(meta)}

    def and_op(self, meta, children):
        return {"node": "binop", "op": "and", "left": children[0], "right": children[1], "span": self._span(meta)}

    def not_op(self, meta, children):
        return {"node": "unary", "op": "not", "operand": children[0], "span": self._span(meta)}

    def binop(self, meta, children):
        left, op, right = children
        return {"node": "binop", "op": str(op), "left": left, "right": right, "span": self._span(meta)}

    def neg(self, meta, children):
        return {"node": "unary", "op": "-", "operand": children[1], "span": self._span(meta)}

    def true(self, meta, children):
        return {"node": "bool", "value": True, "span": self._span(meta)}

    def false(self, meta, children):
        return {"node": "bool", "value": False, "span": self._span(meta)}

    def ref(self, meta, children):
        name, attr = (children + [None])[:2]
        return {"node": "ref", "name": str(name), "attr": str(attr) if attr is not None else None,
                "span": self._span(meta)}

    def func(self, meta, children):
        name, *args = children
        return {"node": "func", "name": str(name), "args": tuple(a for a in args if a is not None),
                "span": self._span(meta)}

    def tuple(self, meta, children):
        return {"node": "tuple", "items": tuple(c for c in children if c is not None), "span": self._span(meta)}

    def list(self, meta, children):
        return {"node": "list", "items": tuple(c for c in children if c is not None), "span": self._span(meta)}


def _dims(shape: dict) -> tuple[int, ...]:
    """`3x224x224` or, for a flat input, a single number."""
    return shape["values"] if shape["node"] == "dims" else (int(shape["value"]),)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
