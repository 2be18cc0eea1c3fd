"""Evaluate the integer expressions of a spec: `c*4`, `in.c // 2`, `stride != 1 or in.c != c`.

Values are ints, floats, bools, strings, tuples (dims, tuples and lists) and `Word`s: names
not bound to anything, which a layer may take as a flag or an option value (`pad=same`).
"""

from __future__ import annotations

import math

from cnnspec import ir
from cnnspec.codes import Code
from cnnspec.wording import closest

#: integers beyond this are refused, so no expression can build a huge number
MAX_MAGNITUDE = 10 ** 15


class Word(str):
    """An unbound name, kept with its span: a flag or a symbolic option value."""

    span: ir.Span


def item_name(name: str, names: dict) -> str:
    """The block or layer kind an item's name stands for: a block parameter given one
    (`unit(c)` in `block stage(unit, c) { unit(c) }`, called `stage(basic, 64)`) stands for it,
    any other name for itself.

    >>> item_name("unit", {"unit": Word("basic")}), item_name("relu", {"c": 8})
    ('basic', 'relu')
    """
    value = names.get(name)
    return str(value) if isinstance(value, Word) else name


class EvalError(Exception):
    def __init__(self, code: Code, message: str, span: ir.Span, help: str | None = None, label: str = ""):
        super().__init__(message)
        self.code, self.message, self.span, self.help, self.label = code, message, span, help, label


class Unknown(Exception):
    """The value depends on a shape that could not be inferred: stay silent, an error was already shown."""


_IN_ATTRS = {1: {"c": 0}, 2: {"c": 0, "l": 1, "w": 1}, 3: {"c": 0, "h": 1, "w": 2},
             4: {"c": 0, "d": 1, "h": 2, "w": 3}}


def in_attribute(shape, attr: str, span: ir.Span):
    if shape is None:
        raise Unknown()
    if attr == "rank":
        return len(shape) - 1
    index = _IN_ATTRS.get(len(shape), {}).get(attr)
    if index is None:
        have = ", ".join(f"`in.{a}`" for a in _IN_ATTRS.get(len(shape), {}))
        raise EvalError(Code.UNAVAILABLE_INPUT_ATTRIBUTE, f"`in.{attr}` is not defined for an input of shape {'x'.join(map(str, shape))}", span,
                        help=f"this input has {have} and `in.rank`")
    return shape[index]


def _number(value, span: ir.Span):
    if isinstance(value, Word):
        raise EvalError(Code.UNKNOWN_NAME, f"unknown name `{value}`", span, label="not defined here")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalError(Code.INVALID_EXPRESSION, f"expected a number, found {describe_value(value)}", span)
    return value


def describe_value(value) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Word):
        return f"the name `{value}`"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, tuple):
        return "a list" if value and isinstance(value[0], tuple) else f"`{'x'.join(map(str, value))}`"
    return f"`{value}`"


def _check_size(value, span):
    if isinstance(value, int) and abs(value) > MAX_MAGNITUDE:
        raise EvalError(Code.INVALID_EXPRESSION, f"number too large ({value:.3g})", span)
    if isinstance(value, float) and not math.isfinite(value):
        raise EvalError(Code.INVALID_EXPRESSION, "number is not finite", span)
    return value


class ArgumentError(ValueError):
    """A function given an argument outside its domain; `index` says which argument."""

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


def _positive(name: str, value, index: int):
    if value <= 0:
        raise ArgumentError(f"`{name}` takes a positive number, found `{value}`", index)
    return value


def log2(x) -> float:
    """The base-2 logarithm, as `math.log2`: exact for powers of two.

    >>> log2(1024), log2(3) > 1.58
    (10.0, True)
    """
    return math.log2(_positive("log2", x, 0))


def log(x, base=None) -> float:
    """The natural logarithm, or the logarithm to `base` (positive, not 1), as `math.log`.

    >>> round(log(math.e), 12), log(1000, 10) > 2.99
    (1.0, True)
    """
    _positive("log", x, 0)
    if base is None:
        return math.log(x)
    if _positive("log", base, 1) == 1:
        raise ArgumentError("`log` cannot take the base `1`", 1)
    return math.log(x, base)


def make_divisible(v, divisor, min_value=None) -> int:
    """`v` rounded to the nearest multiple of `divisor`, at least `min_value` (the divisor by
    default), and moved up a multiple if rounding lost more than 10% of `v`: how the MobileNets
    and EfficientNets round their widths (TensorFlow's `make_divisible`, torchvision's
    `_make_divisible`):

        n = max(min_value, floor(v + divisor/2) // divisor * divisor);  n + divisor if n < 0.9 v

    >>> make_divisible(32 * 0.75, 8), make_divisible(72 // 4, 8), make_divisible(3, 8), make_divisible(100, 8, 64)
    (24, 24, 8, 104)
    """
    if isinstance(divisor, float) or divisor <= 0:
        raise ArgumentError(f"`make_divisible` takes a positive whole divisor, found `{divisor}`", 1)
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


#: the functions an expression may call; `ArgumentError`s of these point at the argument
_FUNCS = {"min": min, "max": max, "abs": abs, "ceil": math.ceil, "floor": math.floor, "round": round,
          "log2": log2, "log": log, "make_divisible": make_divisible}


class Evaluator:
    """Evaluates expressions against bound names and the enclosing block's input shape."""

    def __init__(self, names: dict, in_shape):
        self.names = names
        self.in_shape = in_shape

    def __call__(self, expr) -> object:
        method = getattr(self, f"_{expr.node}")
        return method(expr)

    def _num(self, e: ir.Num):
        return _check_size(e.value, e.span)

    def _bool(self, e: ir.Bool):
        return e.value

    def _str(self, e: ir.Str):
        return e.value

    def _dims(self, e: ir.Dims):
        return e.values

    def _tuple(self, e: ir.TupleLit):
        return tuple(self(i) for i in e.items)

    _list = _tuple

    def _ref(self, e: ir.Ref):
        if e.name == "in" and e.attr is not None:
            return in_attribute(self.in_shape, e.attr, e.span)
        if e.attr is not None:
            raise EvalError(Code.UNKNOWN_NAME, f"`{e.name}.{e.attr}` is not defined; only `in` has attributes", e.span)
        if e.name in self.names:
            return self.names[e.name]
        word = Word(e.name)
        word.span = e.span
        return word

    def _unary(self, e: ir.UnaryOp):
        value = self(e.operand)
        if e.op == "not":
            return not self.truth(value, e.operand.span)
        return -_number(value, e.operand.span)

    def truth(self, value, span) -> bool:
        if isinstance(value, Word):
            raise EvalError(Code.UNKNOWN_NAME, f"unknown name `{value}`", span, label="not defined here",
                            help=self._suggest(value))
        return bool(value)

    def _suggest(self, name: str) -> str | None:
        near = closest(name, list(self.names) + ["in"])
        return f"did you mean `{near}`?" if near else None

    def _func(self, e: ir.Func):
        func = _FUNCS.get(e.name)
        if func is None:
            raise EvalError(Code.INVALID_EXPRESSION, f"unknown function `{e.name}`", e.span,
                            help="functions are " + ", ".join(f"`{f}`" for f in _FUNCS))
        args = [_number(self(a), a.span) for a in e.args]
        try:
            return _check_size(func(*args), e.span)
        except ArgumentError as error:
            raise EvalError(Code.INVALID_EXPRESSION, str(error), e.args[error.index].span, label="outside its domain") from None
        except (TypeError, ValueError) as error:
            raise EvalError(Code.INVALID_EXPRESSION, f"`{e.name}` cannot take these arguments: {error}", e.span) from None

    def _conditional(self, e: ir.Conditional):
        chosen = e.then if self.truth(self(e.condition), e.condition.span) else e.otherwise
        return self(chosen)

    def _binop(self, e: ir.BinOp):
        if e.op in ("and", "or"):
            left = self.truth(self(e.left), e.left.span)
            if (e.op == "and" and not left) or (e.op == "or" and left):
                return left
            return self.truth(self(e.right), e.right.span)
        left, right = self(e.left), self(e.right)
        if e.op in ("==", "!="):
            for value, span in ((left, e.left.span), (right, e.right.span)):
                if isinstance(value, Word):
                    raise EvalError(Code.UNKNOWN_NAME, f"unknown name `{value}`", span, help=self._suggest(value))
            return (left == right) == (e.op == "==")
        a, b = _number(left, e.left.span), _number(right, e.right.span)
        if isinstance(left, Word) or isinstance(right, Word):
            raise EvalError(Code.UNKNOWN_NAME, "unknown name", e.span)
        op = e.op
        if op in ("/", "//", "%") and b == 0:
            raise EvalError(Code.INVALID_EXPRESSION, "division by zero", e.span, label="the divisor is zero here")
        result = {
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
            "//": lambda: a // b, "%": lambda: a % b, "<": lambda: a < b, "<=": lambda: a <= b,
            ">": lambda: a > b, ">=": lambda: a >= b,
        }[op]()
        return _check_size(result, e.span)
