"""The surface IR back to spec text, in one canonical layout.

`print_spec(parse(text))` parses to the same IR (spans aside). Two spaces of indentation,
one statement per line, options after positional arguments, expressions parenthesised only
where precedence needs it.
"""

from __future__ import annotations

from cnnspec import ir

INDENT = "  "

#: binding strength of each binary operator (higher binds tighter)
PRECEDENCE = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
              "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6}
UNARY = {"not": 3, "-": 7}
ATOM = 8


class PrintError(ValueError):
    """The IR holds something the language has no text for (a negative positional argument)."""


def print_spec(spec: ir.SpecFile) -> str:
    return "".join(line + "\n" for line in statements(spec.statements, 0))


def statements(body, depth: int) -> list[str]:
    lines = []
    for st in body:
        lines += statement(st, depth)
    return lines


def statement(st, depth: int) -> list[str]:
    pad = INDENT * depth
    node = st.node
    if node == "network":
        return [f"{pad}network {st.name}"]
    if node == "input":
        return [f"{pad}input {st.name}: {dims(st.dims)}"]
    if node == "import":
        return [f'{pad}import "{st.path}"']
    if node == "expect_shape":
        return [f"{pad}expect {st.metric} {dims(st.dims)}"]
    if node == "expect_metric":
        return [f"{pad}expect {st.metric} {st.op} {st.text}"]
    if node == "block":
        params = ", ".join(p.name + (f"={expr(p.default)}" if p.default is not None else "") for p in st.params)
        return attach(f"{pad}block {st.name}({params}) ", group(st.body, depth))
    label = f"{st.label}: " if st.label else ""
    lines = [pad + label]
    for index, item_ in enumerate(st.chain):
        if index:
            lines[-1] += ", "
        lines = join(lines, item(item_, depth))
    return lines


def join(lines: list[str], more: list[str]) -> list[str]:
    """Continue the last line with the first of `more`."""
    return lines[:-1] + [lines[-1] + more[0]] + more[1:]


def attach(head: str, more: list[str]) -> list[str]:
    return [head + more[0]] + more[1:]


def group(g: ir.Group, depth: int) -> list[str]:
    if not g.body:
        return ["{}"]
    return ["{"] + statements(g.body, depth + 1) + [INDENT * depth + "}"]


def item(it, depth: int, repeated: bool = False) -> list[str]:
    node = it.node
    if node == "layer":
        if not it.args and not it.options:
            return [it.kind]
        if repeated:
            # a layer with arguments repeats in its call form: `conv(64, 3x3) * 2`
            return [f"{it.kind}({call_args(it.args, it.options)})"]
        words = [positional(a) for a in it.args] + [f"{o.key}={value(o.value)}" for o in it.options]
        return [" ".join([it.kind, *words])]
    if node == "call":
        star = "*" if it.splice else ""
        return [f"{star}{it.name}({call_args(it.args, it.options)})"]
    if node == "group":
        return group(it, depth)
    if node == "repeat":
        return join(item(it.item, depth, repeated=True), [f" * {expr(it.count, ATOM)}"])
    if node == "residual":
        lines = attach("residual ", group(it.main, depth))
        if it.shortcut is not None:
            short = it.shortcut
            head = " shortcut "
            if short.label:
                head += f"{short.label}: "
            if short.condition is not None:
                head += f"when({expr(short.condition)}) "
            lines = join(lines, attach(head, group(short.body, depth)))
        return lines
    if node == "concat":
        flags = "".join(f" {f}" for f in it.flags)
        return attach(f"concat{flags} ", group(it.body, depth))
    if node in ("add", "scale"):
        return attach(f"{node} ", group(it.body, depth))
    if node == "when":
        lines = attach(f"when ({expr(it.condition)}) ", group(it.then, depth))
        if it.otherwise is not None:
            lines = join(lines, attach(" else ", group(it.otherwise, depth)))
        return lines
    raise AssertionError(node)


def call_args(args, options) -> str:
    return ", ".join([value(a) for a in args] + [f"{o.key}={value(o.value)}" for o in options])


def dims(values) -> str:
    return "x".join(map(str, values))


def value(e) -> str:
    """An option value or call argument: any expression, dims, list or string."""
    return expr(e)


def positional(e) -> str:
    """A layer's positional argument: an expression that does not start with `-` or `(`."""
    text = expr(e)
    if text.startswith(("-", "(")):
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
        if "." not in mantissa:
            mantissa += ".0"
        text = f"{mantissa}e{int(exponent)}"
    return text


def expr(e, context: int = 0) -> str:
    """An expression, parenthesised when it binds looser than `context` requires."""
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
        text = ("not " if e.op == "not" else "-") + expr(e.operand, strength)
        return f"({text})" if strength < context else text
    if node == "binop":
        strength = PRECEDENCE[e.op]
        # left-associative: the right operand needs a strictly tighter binding;
        # comparisons do not chain at all
        left_context = strength + 1 if strength == 4 else strength
        text = f"{expr(e.left, left_context)} {e.op} {expr(e.right, strength + 1)}"
        return f"({text})" if strength < context else text
    raise AssertionError(node)
