"""The surface IR (`cnnspec.ir`) built while Lark parses, with a `Span` on every node.

`SpecBuilder` is Lark's internal transformer: each rule's method runs as the LALR parser
reduces the rule, so no parse tree is built and walked afterwards, and no recursion is
involved. Its methods build the IR's nodes with `Node.built`, unvalidated: every value has its
type by construction (numbers are parsed here, names are tokens' text), and building and running
Pydantic's validators for the tree cost more than the parse. What the validation also caught,
a tree nested too deeply for the checker's recursive passes, `validate` finds (E012).

Spans are worked out here rather than by Lark's `propagate_positions`, which costs about
half of the parse: a node runs from the start of its first child to the end of its last.
The rules whose first or last symbol is a keyword or a bracket keep their tokens (`!rule`
in the grammar) so those count. A parenthesised expression's span takes in its brackets.
Numbers, dimensions and strings arrive as tokens (their rules are inlined) and become
nodes where they are used. A number the checker cannot hold (an integer beyond 10^15, a float
beyond the largest double) is a located E108 collected in `problems`; its node keeps a
placeholder, and the parse fails with the problems once the text is read.
"""

from __future__ import annotations

import math

from lark import Token, Transformer

from cnnspec import ir
from cnnspec.analysis.expressions import MAX_MAGNITUDE
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, SpecError

_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}

#: tokens that only delimit: never arguments, items or operands
_PUNCTUATION = frozenset({"LPAR", "RPAR", "LSQB", "RSQB", "COMMA", "_SEP"})


#: digits of the largest integer a spec may write
_MAX_DIGITS = len(str(MAX_MAGNITUDE))


class NumberError(ValueError):
    """A literal beyond what the checker holds; the message never spells the number out."""

    def __init__(self, message: str, label: str):
        super().__init__(message)
        self.label = label


def parse_int(text: str) -> int:
    """`61_706` -> 61706; beyond `MAX_MAGNITUDE` (10^15) a `NumberError`, decided on the digits
    before converting (Python refuses to convert more than 4,300 of them).

    >>> parse_int("61_706"), parse_int("0001")
    (61706, 1)
    """
    digits = text.replace("_", "").lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS or int(digits) > MAX_MAGNITUDE:
        raise NumberError(f"number too large ({len(digits):,} digits)", "numbers are at most 10^15")
    return int(digits)


def parse_float(text: str) -> float:
    """A float literal; `1e400` (beyond the largest double, about 1.8e308) is a `NumberError`."""
    value = float(text)
    if not math.isfinite(value):
        raise NumberError("number is not finite", "beyond the largest float (about 1.8e308)")
    return value


def parse_quantity(text: str) -> float:
    """`5M` -> 5e6, `1.9G` -> 1.9e9, `61_706` -> 61706.

    >>> parse_quantity("1.9G"), parse_quantity("5M"), parse_quantity("61_706")
    (1900000000.0, 5000000.0, 61706.0)
    """
    text = text.replace("_", "")
    if text[-1] in _SUFFIX:
        return parse_float(str(float(text[:-1]) * _SUFFIX[text[-1]]))
    return parse_float(text)


#: IR levels a spec may nest, counted as pydantic-core counted them when it validated the tree
#: (every node and span but a shortcut and a block parameter, which its schema inlined): the
#: depth the checker's recursive passes were written for. A long sum nests once per term.
MAX_LEVELS = 255
#: IR levels that nodes with no own characters add: the statement, and the span of its deepest
#: node. Every other level takes at least one character (an operator, a bracket, a name).
_LEVELS_WITHOUT_TEXT = 2
#: nodes that add no level
_UNCOUNTED = (ir.Shortcut, ir.BlockParam)


def validate(statements: list, path: str) -> ir.SpecFile:
    """The built statements as the file's IR; E012 where they nest deeper than `MAX_LEVELS`."""
    for statement in statements:
        span = statement.span
        if span.line == span.end_line and span.end_column - span.column + _LEVELS_WITHOUT_TEXT <= MAX_LEVELS:
            continue  # too short to nest too deeply
        path_down = _too_deep(statement, 0)
        if path_down is not None:
            raise _nested_too_deeply(path_down)
    return ir.SpecFile.built(path=path, statements=tuple(statements))


#: the expressions that nest (`a + b + c` is a binop in a binop)
_NESTING_EXPRESSIONS = (ir.BinOp, ir.UnaryOp, ir.Func, ir.Conditional, ir.TupleLit, ir.ListLit)


def _too_deep(node: ir.Node, depth: int) -> list[ir.Node] | None:
    """The first path (fields in order) from `node` down to a level beyond `MAX_LEVELS`, `depth`
    levels above it; None when there is none. The recursion stops there, so it stays shallow."""
    depth += not isinstance(node, _UNCOUNTED)
    if depth > MAX_LEVELS:
        return [node]
    for value in node.__dict__.values():
        for child in value if type(value) is tuple else (value,):
            if isinstance(child, ir.Node):
                below = _too_deep(child, depth)
                if below is not None:
                    return [node, *below]
    return None


def _nested_too_deeply(path_down: list[ir.Node]) -> SpecError:
    """E012 at the outermost expression that nests on the path, or else at its statement."""
    where = next((node.span for node in path_down if isinstance(node, _NESTING_EXPRESSIONS)), path_down[0].span)
    return SpecError([Diagnostic(code=Code.SPEC_TOO_LARGE, message="the spec nests too deeply to check",
                                 span=where, label="nested too deeply here",
                                 help="split the expression, or the structure, into named blocks or shorter steps")])


def label_problem(text: str) -> str | None:
    """Why a quoted label cannot be a state_dict key, if it cannot: PyTorch refuses an empty
    module name (and `.` separates them), and braces number copies (`denselayer{}`).

    >>> label_problem("block1-0"), label_problem("a..b")
    (None, 'the label "a..b" has an empty part')
    """
    if any(part == "" for part in text.split(".")):
        return "a quoted label cannot be empty" if not text else f'the label "{text}" has an empty part'
    if "{" in text or "}" in text:
        return f'the label "{text}" holds a brace'
    return None


def _edge(child, end: bool):
    """(line, column) where a child begins, or with `end` where it ends; None for a placeholder."""
    if isinstance(child, Token):
        return (child.end_line, child.end_column) if end else (child.line, child.column)
    if isinstance(child, (ir.Node, dict)):
        span = child["span"] if isinstance(child, dict) else child.span
        return (span.end_line, span.end_column) if end else (span.line, span.column)
    if isinstance(child, tuple):
        for item in reversed(child) if end else child:
            found = _edge(item, end)
            if found is not None:
                return found
    return None


def _meaningful(children) -> list:
    """Children without placeholders and delimiting tokens."""
    return [c for c in children if c is not None and not (isinstance(c, Token) and c.type in _PUNCTUATION)]


class SpecBuilder(Transformer):
    """Rule name -> IR node. Set `path` before each parse: the spans name the file."""

    def __init__(self):
        super().__init__(visit_tokens=False)
        self.begin("<spec>")

    def begin(self, path: str) -> None:
        """Ready for a parse of the file `path`."""
        self.path = path
        self.problems: list[Diagnostic] = []

    # -- numbers
    def _number(self, parse, text: str, token: Token, offset: int = 0):
        """`parse(text)` for the literal `text` found `offset` characters into `token`; a
        literal out of range is recorded as a problem, with 0 in its place."""
        try:
            return parse(text)
        except NumberError as error:
            column = token.column + offset
            span = ir.Span.at(self.path, token.line, column, token.line, column + len(text))
            self.problems.append(Diagnostic(code=Code.INVALID_EXPRESSION, message=str(error), span=span,
                                            label=error.label))
            return 0

    def _dims(self, shape: Token) -> tuple[int, ...]:
        """`3x224x224` or, for a flat input, a single number."""
        values, offset = [], 0
        for part in shape.split("x"):
            values.append(self._number(parse_int, part, shape, offset))
            offset += len(part) + 1
        return tuple(values)

    def _label(self, label: Token | None) -> str | None:
        """The label as written; a numbered label's start (`block{4}`) must be a number the checker holds."""
        if label is None:
            return None
        if label.type == "NUMBERED_LABEL" and not label.endswith("{}"):
            start = label.index("{") + 1
            self._number(parse_int, label[start:-1], label, start)
        return str(label)

    # -- spans
    def _span(self, children) -> ir.Span:
        """From the first positioned child's start to the last one's end; a node's own span when
        it is the only positioned child (a statement of one item), as spans are frozen."""
        for first in children:
            start = _edge(first, end=False)
            if start is not None:
                break
        for last in reversed(children):
            end = _edge(last, end=True)
            if end is not None:
                break
        if first is last:
            sole = first[0] if type(first) is tuple and len(first) == 1 else first
            if isinstance(sole, ir.Node):
                return sole.span
        return ir.Span.at(self.path, start[0], start[1], end[0], end[1])

    def _tspan(self, token: Token) -> ir.Span:
        return ir.Span.at(self.path, token.line, token.column, token.end_line, token.end_column)

    def _expr(self, child):
        """A number, dimensions or string token as its node; nodes pass through."""
        if not isinstance(child, Token):
            return child
        kind = child.type
        if kind == "INT":
            return ir.Num.built(value=self._number(parse_int, child, child), span=self._tspan(child))
        if kind == "FLOAT":
            return ir.Num.built(value=self._number(parse_float, child, child), span=self._tspan(child))
        if kind == "DIMS":
            return ir.Dims.built(values=self._dims(child), span=self._tspan(child))
        if kind == "STRING":
            return ir.Str.built(value=child[1:-1], span=self._tspan(child))
        raise AssertionError(f"token {kind} is not an expression")

    # -- statements
    def start(self, children):
        return [c for c in children if c is not None]

    def body(self, children):
        return tuple(c for c in children if c is not None)

    def network_decl(self, children):
        return ir.NetworkDecl.built(name=str(children[1]), span=self._span(children))

    def input_decl(self, children):
        _keyword, name, _colon, shape = children
        return ir.InputDecl.built(name=str(name), dims=self._dims(shape), span=self._span(children),
                                  dims_span=self._tspan(shape), name_span=self._tspan(name))

    def block_def(self, children):
        _keyword, name, params, returns, group = children
        return ir.BlockDef.built(name=str(name), params=params or (), returns=returns or (), body=group,
                                 span=self._span(children), name_span=self._tspan(name))

    def block_returns(self, children):
        return tuple(self._value_name(c) for c in children if c.type == "NAME")

    def block_params(self, children):
        return tuple(c for c in children if c is not None)

    def block_param(self, children):
        name = children[0]
        default = self._expr(children[1]) if len(children) > 1 and children[1] is not None else None
        return ir.BlockParam.built(name=str(name), default=default, span=self._span(children))

    def output_decl(self, children):
        items = _meaningful(children[1:])
        keys = tuple(key for key, _ in items)
        return ir.OutputDecl.built(names=tuple(name for _, name in items),
                                   keys=keys if any(k is not None for k in keys) else (), span=self._span(children))

    def output_item(self, children):
        """(the name it is returned under when written, `"0"` without its quotes; the value read)"""
        *written, name = children
        key = written[0] if written else None
        if key is not None:
            key = key[1:-1] if key.type == "STRING" else str(key)
        return key, self._value_name(name)

    def import_stmt(self, children):
        return ir.Import.built(path=children[1][1:-1], span=self._span(children))

    def expect_shape(self, children):
        _keyword, name, shape = children
        return ir.ExpectShape.built(metric=str(name), dims=self._dims(shape), span=self._span(children))

    def expect_metric(self, children):
        _keyword, name, op, quantity = children
        # the number as written, digit groups included: `expect params == 25_557_032`
        parse = {"QUANTITY": parse_quantity, "INT": lambda t: float(parse_int(t)), "FLOAT": parse_float}[quantity.type]
        value, text = self._number(parse, quantity, quantity), str(quantity)
        return ir.ExpectMetric.built(metric=str(name), op=str(op), value=value, text=text, span=self._span(children))

    # -- items
    def label_name(self, children):
        """The label as one token spanning what was written: its text is the key, the parts of a
        dotted label joined by `.`, a quoted label without its quotes."""
        first, last = children[0], children[-1]
        if first.type == "STRING":
            text = first[1:-1]
            problem = label_problem(text)
            if problem:
                self.problems.append(Diagnostic(code=Code.INVALID_LABEL, message=problem, span=self._tspan(first),
                                                label="not a module name",
                                                help="a key is names joined by `.`; each holds any characters but `.`, "
                                                     "braces and quotes"))
        elif len(children) == 1:
            return first
        else:
            text = ".".join(children)
        return Token("LABEL", text, first.start_pos, first.line, first.column, last.end_line, last.end_column,
                     last.end_pos)

    def item_stmt(self, children):
        binding, source, label, chain = children
        statement = {"label": self._label(label), "label_span": self._tspan(label) if label is not None else None,
                     "chain": chain, "span": self._span(children)}
        if isinstance(binding, dict):
            statement["bindings"] = binding["bindings"]
        elif binding is not None:
            statement["binding"] = binding
        if source is not None:
            statement["source"] = source
        return ir.ItemStatement.built(**statement)

    def _value_name(self, token: Token) -> ir.ValueName:
        return ir.ValueName.built(name=str(token), span=self._tspan(token))

    def binding(self, children):
        return self._value_name(children[0])

    def binding_tuple(self, children):
        """`(h, l) =`: the names, and the span from the bracket, where the statement begins"""
        return {"bindings": tuple(self._value_name(c) for c in children if c.type == "NAME"), "span": self._span(children)}

    def source(self, children):
        return self._value_name(children[0])

    def operands(self, children):
        """The operands of a merge over values, each a value's name and the chain from it (None for
        none): a chain (`lo -> conv 8 1x1`) takes the pieces after it, up to the next chain, as its
        items (a name alone among them is a layer: `relu`); an item before any chain starts from no
        value and is E001."""
        names, chains = [], []
        for piece in _meaningful(children):
            if isinstance(piece, Token):
                if not chains or chains[-1] is None:
                    names.append(self._value_name(piece))
                    chains.append(None)
                    continue
                span = self._tspan(piece)
                piece = ir.Layer.built(kind=str(piece), span=span, kind_span=span)
            elif isinstance(piece, dict):  # a chain, `lo -> conv 8 1x1`
                names.append(piece["source"])
                chains.append(piece)
                continue
            if not chains or chains[-1] is None:
                self.problems.append(Diagnostic(
                    code=Code.UNEXPECTED_TOKEN, message="an operand of a merge over values starts from a value",
                    span=piece.span, label="an item, not a value",
                    help="name the value it runs on: `add(a, b -> conv 8 1x1)`, as a statement's `b -> ...`"))
                continue
            chain = chains[-1]
            chain["chain"] += (piece,)
            chain["span"] = self._span((chain["source"], piece))
        chains = [ir.ItemStatement.built(**chain) if chain is not None else None for chain in chains]
        # the brackets count in the merge's span
        return {"names": tuple(names), "chains": tuple(chains) if any(chains) else (), "span": self._span(children)}

    def operand_chain(self, children):
        # the statement's fields, to which `operands` adds the items after it
        source, _arrow, item = children
        return {"source": self._value_name(source), "chain": (item,), "span": self._span(children)}

    def _value_merge(self, op: str, children) -> ir.ValueMerge:
        *flags, operands = children[1:]
        return ir.ValueMerge.built(op=op, flags=tuple(str(f) for f in flags), operands=operands["names"],
                                   chains=operands["chains"], span=self._span(children))

    def value_add(self, children):
        return self._value_merge("add", children)

    def value_scale(self, children):
        return self._value_merge("scale", children)

    def value_concat(self, children):
        return self._value_merge("concat", children)

    def use(self, children):
        _keyword, label, passed = children
        values = _meaningful(passed[1:-1]) if passed is not None else ()
        return ir.Use.built(label=str(label), label_span=self._tspan(label), values=tuple(name for _, name in values),
                            keys=tuple(key for key, _ in values), span=self._span(children))

    def use_values(self, children):
        # the brackets stay, so that the use's span ends at `)`
        return tuple(children)

    def use_value(self, children):
        """(the value parameter named, if written; the value passed)"""
        key, name = children
        return (str(key) if key is not None else None), self._value_name(name)

    def chain(self, children):
        return tuple(children)

    def repeat(self, children):
        item, _star, count = children
        return ir.Repeat.built(item=item, count=self._expr(count), span=self._span(children))

    def bare_layer(self, children):
        name = children[0]
        span = self._tspan(name)
        return ir.Layer.built(kind=str(name), span=span, kind_span=span)

    def _arguments(self, args) -> dict:
        """Positional arguments and `key=value` options, each in the order written."""
        args = [self._expr(a) for a in args]
        return {"args": tuple(a for a in args if type(a) is not ir.Option),
                "options": tuple(a for a in args if type(a) is ir.Option)}

    def layer(self, children):
        name, *args = children
        return ir.Layer.built(kind=str(name), **self._arguments(args), span=self._span(children),
                              kind_span=self._tspan(name))

    def call(self, children):
        name = children[0]
        return ir.Call.built(name=str(name), **self._arguments(_meaningful(children[1:])), span=self._span(children),
                             name_span=self._tspan(name))

    def splice(self, children):
        inner = children[1]
        if isinstance(inner, ir.Layer):
            return ir.Call.built(name=inner.kind, span=self._span(children), name_span=inner.kind_span, splice=True)
        return inner.model_copy(update={"span": self._span(children), "splice": True})

    def option(self, children):
        key, value = children
        return ir.Option.built(key=str(key), value=self._expr(value), span=self._span(children))

    kwarg = option

    def opt_key(self, children):
        return children[0]

    def group(self, children):
        return ir.Group.built(body=children[1], span=self._span(children))

    def residual(self, children):
        _keyword, main, shortcut = children
        return ir.Residual.built(main=main, shortcut=shortcut, span=self._span(children))

    def shortcut(self, children):
        _keyword, label, _colon, condition, group = children
        return ir.Shortcut.built(label=str(label) if label is not None else None,
                                 label_span=self._tspan(label) if label is not None else None,
                                 condition=condition, body=group, span=self._span(children))

    def condition(self, children):
        # `when ( expr )`: the shortcut's span covers it; the condition is its expression
        return self._expr(children[0])

    def concat(self, children):
        *flags, group = children[1:]
        return ir.Concat.built(flags=tuple(str(f) for f in flags), body=group, span=self._span(children))

    def add(self, children):
        return ir.Add.built(body=children[1], span=self._span(children))

    def scale(self, children):
        return ir.Scale.built(body=children[1], span=self._span(children))

    def when(self, children):
        _keyword, _open, condition, _close, then, _else, otherwise = children
        return ir.When.built(condition=self._expr(condition), then=then, otherwise=otherwise, span=self._span(children))

    # -- expressions
    def _binary(self, op: str, children, left, right):
        return ir.BinOp.built(op=op, left=self._expr(left), right=self._expr(right), span=self._span(children))

    def or_op(self, children):
        return self._binary("or", children, children[0], children[1])

    def and_op(self, children):
        return self._binary("and", children, children[0], children[1])

    def binop(self, children):
        left, op, right = children
        return self._binary(str(op), children, left, right)

    def not_op(self, children):
        return ir.UnaryOp.built(op="not", operand=self._expr(children[1]), span=self._span(children))

    def neg(self, children):
        return ir.UnaryOp.built(op="-", operand=self._expr(children[1]), span=self._span(children))

    def conditional(self, children):
        then, condition, otherwise = (c for c in children if not (isinstance(c, Token) and c.type in ("IF", "ELSE")))
        return ir.Conditional.built(then=self._expr(then), condition=self._expr(condition),
                                    otherwise=self._expr(otherwise), span=self._span(children))

    def atom(self, children):
        # `( expr )`: the expression, its span widened to the brackets
        return self._expr(children[1]).model_copy(update={"span": self._span(children)})

    def true(self, children):
        return ir.Bool.built(value=True, span=self._span(children))

    def false(self, children):
        return ir.Bool.built(value=False, span=self._span(children))

    def ref(self, children):
        name, attr = (children + [None])[:2]
        return ir.Ref.built(name=str(name), attr=str(attr) if attr is not None else None, span=self._span(children))

    def func(self, children):
        return ir.Func.built(name=str(children[0]), args=tuple(self._expr(a) for a in _meaningful(children[1:])),
                             span=self._span(children))

    def tuple(self, children):
        return ir.TupleLit.built(items=tuple(self._expr(a) for a in _meaningful(children)), span=self._span(children))

    def list(self, children):
        return ir.ListLit.built(items=tuple(self._expr(a) for a in _meaningful(children)), span=self._span(children))
