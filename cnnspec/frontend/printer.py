"""The surface IR back to spec text, in one canonical layout.

`print_spec(parse(text))` parses to the same IR (spans aside). Two spaces of indentation,
one statement per line, options after positional arguments, expressions parenthesised only
where precedence needs it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from cnnspec import ir

INDENT = "  "

#: binding strength of each binary operator (higher binds tighter)
PRECEDENCE = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
              "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6}
UNARY = {"not": 3, "-": 7}
#: `a if c else b` binds loosest of all
CONDITIONAL = 0
ATOM = 8


class PrintError(ValueError):
    """The IR holds something the language has no text for (a negative positional argument)."""


class Line(NamedTuple):
    """A printed line, with where its first token came from: the source line, and the depth at
    which a comment placed just before it is indented (inside a group for its closing brace)."""

    text: str
    source_line: int | None = None
    comment_depth: int = 0


def print_spec(spec: ir.SpecFile, keep_layout: bool = False) -> str:
    """The spec in canonical layout: one statement per line, two spaces per level.

    `keep_layout` keeps the choices the author made where the layout is free: statements joined
    with `;` on one line (`conv 64 3x3; relu`) and groups written on one line
    (`{ conv 64 3x3; relu } * 2`) stay so while the line fits in `MAX_INLINE` columns, and a
    layer's options and flags keep the order they were written in.
    """
    return "".join(line.text + "\n" for line in Printer(keep_layout).lines(spec))


#: the longest line a kept one-line layout may make
MAX_INLINE = 100


class Printer:
    def __init__(self, keep_layout: bool = False):
        self.keep_layout = keep_layout

    def lines(self, spec: ir.SpecFile) -> list[Line]:
        return self.statements(spec.statements, 0)

    def statements(self, body, depth: int) -> list[Line]:
        lines: list[Line] = []
        previous = None
        for st in body:
            printed = self.statement(st, depth)
            # `conv 64 3x3; relu` written on one line stays on one line
            if (self.keep_layout and previous is not None and len(printed) == 1
                    and previous.span.end_line == st.span.line and len(lines[-1].text) + 2 + len(printed[0].text)
                    - len(INDENT * depth) <= MAX_INLINE):
                lines[-1] = lines[-1]._replace(text=f"{lines[-1].text}; {printed[0].text.lstrip()}")
            else:
                lines += printed
            previous = st if len(printed) == 1 else None
        return lines

    def statement(self, st, depth: int) -> list[Line]:
        pad = INDENT * depth
        first = Line(pad, st.span.line, depth)
        node = st.node
        if node == "network":
            return [first._replace(text=f"{pad}network {st.name}")]
        if node == "input":
            return [first._replace(text=f"{pad}input {st.name}: {dims(st.dims)}")]
        if node == "output":
            keys = st.keys or (None,) * len(st.names)
            items = (n.name if k is None else f"{output_key(k)}={n.name}" for k, n in zip(keys, st.names))
            return [first._replace(text=f"{pad}output {', '.join(items)}")]
        if node == "import":
            return [first._replace(text=f'{pad}import "{st.path}"')]
        if node == "expect_shape":
            return [first._replace(text=f"{pad}expect {st.metric} {dims(st.dims)}")]
        if node == "expect_metric":
            return [first._replace(text=f"{pad}expect {st.metric} {st.op} {st.text}")]
        if node == "block":
            params = ", ".join(p.name + (f"={expr(p.default)}" if p.default is not None else "") for p in st.params)
            head = f"{pad}block {st.name}({params}) " if params else f"{pad}block {st.name} "
            if st.returns:
                names = ", ".join(r.name for r in st.returns)
                head += f"-> ({names}) " if len(st.returns) > 1 else f"-> {names} "
            return attach(first._replace(text=head), self.group(st.body, depth))
        label = f"{label_text(st.label)}: " if st.label else ""
        lines = [first._replace(text=pad + dataflow_prefix(st) + label)]
        for index, item_ in enumerate(st.chain):
            if index:
                lines = join(lines, [Line(", ")])
            lines = join(lines, self.item(item_, depth))
        return lines

    def value_merge(self, it: ir.ValueMerge, depth: int) -> list[Line]:
        """`add(hi, lo -> conv 8 1x1, upsample size=hi)`: a chain runs on to the next chain or the `)`,
        so no value read as it is can follow one."""
        flags = "".join(f" {f}" for f in it.flags)
        lines = [Line(f"{it.op}{flags}(")]
        chains = it.chains or (None,) * len(it.operands)
        for index, (name, chain) in enumerate(zip(it.operands, chains)):
            if index:
                lines = join(lines, [Line(", ")])
            if chain is not None:
                printed = self.statement(chain, depth)
                lines = join(lines, [printed[0]._replace(text=printed[0].text.lstrip())] + printed[1:])
            elif any(c is not None for c in chains[:index]):
                raise PrintError(f"`{name.name}` after a chain in `{it.op}(...)` would read as one of its layers: "
                                 "the values read as they are come first")
            else:
                lines = join(lines, [Line(name.name)])
        return join(lines, [Line(")")])

    def group(self, g: ir.Group, depth: int) -> list[Line]:
        if not g.body:
            return [Line("{}")]
        if self.keep_layout and g.span.line == g.span.end_line:
            inner = [self.statement(st, 0) for st in g.body]
            if all(len(lines) == 1 for lines in inner):
                text = "{ " + "; ".join(lines[0].text for lines in inner) + " }"
                if len(INDENT * depth) + len(text) <= MAX_INLINE:
                    return [Line(text)]
        closing = Line(INDENT * depth + "}", g.span.end_line, depth + 1)
        return [Line("{")] + self.statements(g.body, depth + 1) + [closing]

    def item(self, it, depth: int, repeated: bool = False) -> list[Line]:
        node = it.node
        if node == "layer":
            if not it.args and not it.options:
                return [Line(it.kind)]
            if repeated:
                # a layer with arguments repeats in its call form: `conv(64, 3x3) * 2`
                return [Line(f"{it.kind}({call_args(it.args, it.options)})")]
            words = [(a.span, positional(a)) for a in it.args] + [(o.span, f"{o.key}={value(o.value)}")
                                                                    for o in it.options]
            if self.keep_layout:
                # flags and options stay in the order written (`maxpool 3x3 stride=2 ceil`)
                words.sort(key=lambda word: (word[0].line, word[0].column))
            return [Line(" ".join([it.kind, *(text for _, text in words)]))]
        if node == "call":
            star = "*" if it.splice else ""
            return [Line(f"{star}{it.name}({call_args(it.args, it.options)})")]
        if node == "group":
            return self.group(it, depth)
        if node == "repeat":
            return join(self.item(it.item, depth, repeated=True), [Line(f" * {expr(it.count, ATOM)}")])
        if node == "residual":
            lines = attach(Line("residual "), self.group(it.main, depth))
            if it.shortcut is not None:
                short = it.shortcut
                head = " shortcut "
                if short.label:
                    head += f"{label_text(short.label)}: "
                if short.condition is not None:
                    head += f"when({expr(short.condition)}) "
                lines = join(lines, attach(Line(head), self.group(short.body, depth)))
            return lines
        if node == "concat":
            flags = "".join(f" {f}" for f in it.flags)
            return attach(Line(f"concat{flags} "), self.group(it.body, depth))
        if node in ("add", "scale"):
            return attach(Line(f"{node} "), self.group(it.body, depth))
        if node == "use":
            values = ", ".join(name.name if key is None else f"{key}={name.name}" for key, name in zip(it.keys, it.values))
            return [Line(f"use {label_text(it.label)}" + (f"({values})" if it.values else ""))]
        if node == "value_merge":
            return self.value_merge(it, depth)
        if node == "when":
            lines = attach(Line(f"when ({expr(it.condition)}) "), self.group(it.then, depth))
            if it.otherwise is not None:
                lines = join(lines, attach(Line(" else "), self.group(it.otherwise, depth)))
            return lines
        raise AssertionError(node)


#: a label written without quotes: names and numbers joined by `.`, or a numbered label
BARE_LABEL = re.compile(r"(?!when(?:\.|$))([A-Za-z_][A-Za-z0-9_]*|[0-9]+(_[0-9]+)*)(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]+(_[0-9]+)*))*"
                         r"|[A-Za-z_][A-Za-z0-9_]*\{[0-9]*\}")


def label_text(label: str) -> str:
    """A label as written: bare where the grammar reads it so (`conv1`, `classifier.cbr`, `0`,
    `denselayer{}`), otherwise quoted (`"block1-0"`; `when` starts a construct).

    >>> label_text("layer1.0"), label_text("block1-0"), label_text("when"), label_text("a.when")
    ('layer1.0', '"block1-0"', '"when"', 'a.when')
    """
    return label if BARE_LABEL.fullmatch(label) else f'"{label}"'


def dataflow_prefix(st: ir.ItemStatement) -> str:
    """`p4 = l4 -> `: the value a statement binds and the one it starts from."""
    binding = f"{st.binding.name} = " if st.binding is not None else ""
    if st.bindings:
        binding = f"({', '.join(b.name for b in st.bindings)}) = "
    return binding + (f"{st.source.name} -> " if st.source is not None else "")


def join(lines: list[Line], more: list[Line]) -> list[Line]:
    """Continue the last line with the first of `more` (the last line keeps its origin)."""
    return lines[:-1] + [lines[-1]._replace(text=lines[-1].text + more[0].text)] + more[1:]


def attach(head: Line, more: list[Line]) -> list[Line]:
    return join([head], more)


def call_args(args, options) -> str:
    return ", ".join([value(a) for a in args] + [f"{o.key}={value(o.value)}" for o in options])


def dims(values) -> str:
    return "x".join(map(str, values))


def value(e) -> str:
    """An option value or call argument: any expression, dims, list or string."""
    return expr(e)


def positional(e) -> str:
    """A layer's positional argument: an expression that does not start with `-` or `(`, its
    arithmetic written without spaces, which separate the arguments (`conv c*4 1x1`)."""
    text = expr(e, tight=True)
    # a positional conditional's sides are positional arithmetic too
    sides = (text, expr(e.otherwise, PRECEDENCE["+"], True)) if e.node == "conditional" else (text,)
    if any(side.startswith(("-", "(")) for side in sides):
        raise PrintError(f"`{text}` cannot be a positional argument; write it as an option")
    return text


def number(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    text = repr(float(v))
    if "e" in text or "E" in text:
        mantissa, exponent = text.lower().split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def expr(e, context: int = 0, tight: bool = False) -> str:
    """An expression, parenthesised when it binds looser than `context` requires; `tight`
    drops the spaces around arithmetic operators."""
    node = e.node
    if node == "num":
        text = number(e.value)
        return f"({text})" if text.startswith("-") and context >= UNARY["-"] else text
    if node == "bool":
        return "true" if e.value else "false"
    if node == "str":
        return f'"{e.value}"'
    if node == "dims":
        return dims(e.values)
    if node == "ref":
        return e.name + (f".{e.attr}" if e.attr else "")
    if node == "func":
        return f"{e.name}({', '.join(expr(a) for a in e.args)})"
    if node == "tuple":
        inner = ", ".join(expr(i) for i in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if node == "list":
        return "[" + ", ".join(expr(i) for i in e.items) + "]"
    if node == "unary":
        strength = UNARY[e.op]
        text = ("not " if e.op == "not" else "-") + expr(e.operand, strength, tight)
        return f"({text})" if strength < context else text
    if node == "conditional":
        # as a positional argument (`tight`) both sides are arithmetic; the condition is an `or`
        side = PRECEDENCE["+"] if tight else PRECEDENCE["or"]
        text = (f"{expr(e.then, side, tight)} if {expr(e.condition, PRECEDENCE['or'], tight)} else "
                f"{expr(e.otherwise, side if tight else CONDITIONAL, tight)}")
        return f"({text})" if context > CONDITIONAL else text
    if node == "binop":
        strength = PRECEDENCE[e.op]
        # left-associative: the right operand needs a strictly tighter binding;
        # comparisons do not chain at all
        left_context = strength + 1 if strength == 4 else strength
        gap = "" if tight and strength >= PRECEDENCE["+"] else " "
        text = f"{expr(e.left, left_context, tight)}{gap}{e.op}{gap}{expr(e.right, strength + 1, tight)}"
        return f"({text})" if strength < context else text
    raise AssertionError(node)


def output_key(key: str) -> str:
    """An output's name as written: bare where it is a name, else in double quotes (`"0"`)."""
    import re

    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f'"{key}"'
