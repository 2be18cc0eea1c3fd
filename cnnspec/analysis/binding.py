"""Binding a call's arguments: a layer's positional arguments, words and options to the fields of
its kind's parameter model, a block call's to the block's parameters, and pydantic's messages
about the values translated into located diagnostics (`should be greater than 0, got -1`).
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from cnnspec import ir
from cnnspec.analysis.context import Env, Reporting
from cnnspec.analysis.expressions import Word, describe_value
from cnnspec.codes import Code
from cnnspec.diagnostics import Label
from cnnspec.layers import REGISTRY
from cnnspec.wording import closest


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


class Binding(Reporting):
    """The elaborator's binding of arguments (it knows the program's `blocks`)."""

    blocks: dict[str, ir.BlockDef]

    def bind_block(self, item, block: ir.BlockDef, env: Env, passed: dict | None = None) -> dict | None:
        """The block's parameters by name, evaluated; the values passed to its value parameters go
        into `passed` (`cnnspec.analysis.value_blocks`)."""
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
                if not self.pass_argument(block, param, expr, where, {} if passed is None else passed):
                    ok = False
                    continue
                if param.name in (passed or {}):
                    continue
                value = self.evaluate(expr, where)
                # a block or a layer kind may be passed, for the body to use as an item
                if isinstance(value, Word) and value not in self.blocks and value not in REGISTRY:
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

    def bind_layer(self, item, kind, env: Env):
        """Positional arguments and options -> field values and the span of each."""
        values: dict = {}
        spans: dict = {}
        positional = list(kind.positional)
        fields = kind.fields
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
