"""Expressions: the conditional `a if c else b`, `log2`/`log`, `make_divisible`, and `else` on
the line after `}`. Values are held to Python's own evaluation of the same text (the language's
expressions are Python's where they overlap), widths to the reference MobileNetV3's, and every
failure to a located diagnostic."""

import math
import re
from fractions import Fraction

import pytest
from conftest import SPECS
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.analysis.expressions import EvalError, Evaluator
from cnnspec.diagnostics import SpecError
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec


def value(text: str, **names):
    """The value of an expression as the checker reads it: a block parameter's default."""
    spec = parse_text(f"input x: 1x1x1\nblock b(v={text}) {{ }}\n", "e.cnn")
    return Evaluator(names, None)(spec.statements[1].params[0].default)


def rounded_width(v, divisor, min_value=None):
    """The MobileNets' width rounding stated another way, as the oracle: the multiple of `divisor`
    nearest to `v` in exact arithmetic (halves up), at least `min_value`, one multiple more where
    that is below 90% of `v`."""
    whole, rest = divmod(Fraction(v), divisor)
    nearest = int(whole + (2 * rest >= divisor)) * divisor
    width = max(divisor if min_value is None else min_value, nearest)
    return width + divisor if width < 0.9 * v else width


@pytest.mark.parametrize("text, expected", [
    ("1 if true else 2", 1), ("1 if false else 2", 2), ("1 if 0 else 2 if 1 else 3", 2),
    ("(1 if false else 2) * 3", 6), ("1 + 2 if 3 > 4 else 5 - 1", 4), ("4 if not false and 1 < 2 else 0", 4),
    ("log2(1024)", 10.0), ("floor(log2(1000))", 9), ("log(1)", 0.0), ("round(log(1000, 10))", 3),
    ("make_divisible(32 * 0.75, 8)", 24), ("make_divisible(3, 8)", 8), ("make_divisible(100, 8, 64)", 104),
    ("make_divisible(18, 8)", 24),  # MobileNetV3's squeeze of 72 channels: 16 would lose over 10%
])
def test_values_are_pythons(text, expected):
    got = value(text)
    python = eval(text.replace("true", "True").replace("false", "False"),
                  {"log2": math.log2, "log": math.log, "floor": math.floor, "round": round,
                   "make_divisible": rounded_width})
    assert got == expected == python and type(got) is type(python)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 20_000).map(lambda n: n / 4), st.sampled_from([1, 2, 4, 8, 16, 32]),
       st.one_of(st.none(), st.integers(1, 64)))
def test_make_divisible_is_the_mobilenets_rounding(v, divisor, min_value):
    args = f"{v!r}, {divisor}" + (f", {min_value}" if min_value is not None else "")
    assert value(f"make_divisible({args})") == rounded_width(v, divisor, min_value)


def test_only_the_chosen_side_is_evaluated():
    # the side not taken would divide by zero, or read an unknown name
    assert value("c // 2 if c > 0 else 1 // c", c=8) == 4
    assert value("1 if true else nothing") == 1


@pytest.mark.parametrize("text, message, column", [
    ("log2(0)", "`log2` takes a positive number, found `0`", 6),
    ("log(8, 1)", "`log` cannot take the base `1`", 8),
    ("make_divisible(10, 0)", "`make_divisible` takes a positive whole divisor, found `0`", 20),
    ("make_divisible(10, 2.5)", "`make_divisible` takes a positive whole divisor, found `2.5`", 20),
    ("make_divisible(999999999999999, 7)", "number too large (1e+15)", 1),
    ("1 if nothing else 2", "unknown name `nothing`", 6),
])
def test_failures_are_located(text, message, column):
    with pytest.raises(EvalError) as error:
        value(text)
    assert error.value.message == message
    # the expression starts at column 11 of its line
    assert (error.value.span.line, error.value.span.column) == (2, 10 + column)


def test_a_block_default_may_round_a_width_once_for_every_call(reference):
    """MobileNetV3-Large with each squeeze width computed from its expansion, as torchvision
    computes it (`_make_divisible(expanded // 4, 8)`), instead of written at every call: the same
    figures and state_dict keys as the zoo's spec, which writes them out."""
    blocks = (SPECS / "common" / "mobilenet.cnn").read_text().replace(
        "block bneck(k, expanded, out, se_c=0, hs=false, stride=1) {",
        "block bneck(k, expanded, out, se=false, hs=false, stride=1, se_c=make_divisible(expanded // 4, 8) if se else 0) {")
    spec = (SPECS / "mobilenet_v3_large.cnn").read_text()
    spec, calls = re.subn(r"se_c=\d+", "se=true", spec)
    assert calls == 6 and "se_c" not in spec
    network = cnnspec.load(SPECS / "mobilenet_v3_large.cnn",
                           texts={str(SPECS / "mobilenet_v3_large.cnn"): spec, str(SPECS / "common" / "mobilenet.cnn"): blocks})
    zoo = cnnspec.load(SPECS / "mobilenet_v3_large.cnn")
    assert network.params == reference["mobilenet_v3_large"]["params"] == zoo.params
    assert network.macs == zoo.macs
    assert [r.path for r in network.rows] == [r.path for r in zoo.rows]


def test_a_positional_conditional_chooses_a_width():
    text = ("input x: 8x4x4\nblock b(t) {\n  conv in.c*t if t != 1 else in.c 1x1 stride=2 if t > 3 else 1\n}\n"
            "b(1)\nb(2)\nb(6)\n")
    network = cnnspec.loads(text)
    assert [row.out_shape for row in network.rows] == [(8, 4, 4), (16, 4, 4), (96, 2, 2)]


def test_else_may_start_the_line_after_the_brace():
    text = ("input x: 8x4x4\nwhen (in.c > 4) {\n  conv 4 1x1\n}\n# the other arm\n\nelse {\n  conv 16 1x1\n}\n"
            "when (false) { relu }\nelse { relu6 }\n")
    network = cnnspec.loads(text)
    assert [(row.kind, row.out_shape) for row in network.rows] == [("conv", (4, 4, 4)), ("relu6", (4, 4, 4))]
    printed = print_spec(parse_text(text, "s.cnn"))
    assert "} else {" in printed and print_spec(parse_text(printed, "s.cnn")) == printed


def test_an_else_without_when_is_located_at_the_word():
    with pytest.raises(SpecError) as error:
        cnnspec.loads("input x: 8x4x4\nwhen (true) { relu } else { relu }\n\n  else { relu }\n")
    (diagnostic,) = error.value.diagnostics
    assert diagnostic.code == "E001" and diagnostic.message == "unexpected `else`"
    assert (diagnostic.span.line, diagnostic.span.column, diagnostic.span.end_column) == (4, 3, 7)


def test_else_still_ends_a_name():
    # `elsewhere` is a name, not `else` and `where`
    network = cnnspec.loads("input x: 8x4x4\nwhen (true) { relu }\nelsewhere: conv 4 1x1\n")
    assert [row.path for row in network.rows] == ["0", "elsewhere"]


def test_conditionals_count_towards_the_operator_limit_and_the_nesting():
    many = " else ".join(["1 if true"] * 1001) + " else 1"
    with pytest.raises(SpecError) as error:
        cnnspec.loads(f"input x: 8x4x4\nblock b(v={many}) {{ }}\n")
    assert [d.code for d in error.value.diagnostics] == ["E012"]
    deep = " else ".join(["1 if true"] * 600) + " else 1"
    with pytest.raises(SpecError) as error:
        cnnspec.loads(f"input x: 8x4x4\nlinear out={deep}\n")
    assert [d.code for d in error.value.diagnostics] == ["E012"]
    assert error.value.diagnostics[0].span.line == 2
