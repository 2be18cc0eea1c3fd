"""No input, however malformed, raises anything but `SpecError` (which carries diagnostics)."""

import re

from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.analysis.elaborate import Limits

ZOO = {p.stem: p.read_text() for p in sorted(SPECS.glob("*.cnn"))}
TOKENS = ["conv", "deconv", "residual", "shortcut", "concat", "crop", "add", "scale", "when", "else", "block",
          "input", "network", "import", "expect", "{", "}", "(", ")", "[", "]", ",", ";", "\n", ":", "=", "*", "-",
          "//", "0", "1", "-1", "3x3", "1x1x1x1", "99999999999", "1e308", "in.c", "in.q", "x", "stride=0",
          "pad=same", "groups=3", "\"../x.cnn\"", "\"lib.cnn\"", "true", "not", "or", "#", "flatten", "linear 0"]
# small budgets keep each example fast; the limits themselves are what is being exercised
LIMITS = Limits(max_layers=3_000, max_repeat=200)


def check_text(text: str) -> None:
    try:
        net = cnnspec.loads(text, path="fuzz.cnn", limits=LIMITS)
    except cnnspec.SpecError as error:
        assert error.diagnostics, "a SpecError must carry at least one diagnostic"
        for d in error.diagnostics:
            assert d.code and d.message
        error.render()
        return
    net.summary(format="json")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data):
    check_text(data.decode("utf-8", errors="replace"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS + [" "] * 6), max_size=60).map("".join))
def test_random_token_soup(text):
    check_text("input x: 3x32x32\n" + text)


@st.composite
def mutated_spec(draw):
    text = ZOO[draw(st.sampled_from(sorted(ZOO)))]
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["delete", "insert", "number", "dupline", "dropline"]))
        if action == "delete" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif action == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + " " + draw(st.sampled_from(TOKENS)) + " " + text[i:]
        elif action == "number":
            numbers = list(re.finditer(r"\d+", text))
            if numbers:
                m = draw(st.sampled_from(numbers))
                value = draw(st.sampled_from(["0", "1", "2", "7", "10000", "999999999", "3x3"]))
                text = text[:m.start()] + value + text[m.end():]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            if action == "dupline":
                lines.insert(i, lines[i])
            else:
                del lines[i]
            text = "\n".join(lines)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_spec())
def test_mutated_zoo_specs(text):
    check_text(text)


@settings(max_examples=25, deadline=None)
@given(terms=st.integers(1, 600), groups=st.integers(0, 95), operator=st.sampled_from(["+", "*", "-", " or "]))
def test_deep_nesting_is_a_diagnostic(terms, groups, operator):
    """A long sum nests once per term; inside nested groups the IR nests deeper still. Past
    what can be validated or evaluated, E012 names the place."""
    sum_ = operator.join(["1"] * terms)
    text = "input x: 3x8x8\n" + "{" * groups + f" mul {sum_} " + "}" * groups + "\n"
    check_text(text)


def test_a_sum_of_hundreds_of_terms_is_refused_at_the_sum():
    text = "input x: 3x8x8\nconv " + "+".join(["1"] * 400) + " 1x1\n"
    try:
        cnnspec.loads(text, path="deep.cnn")
    except cnnspec.SpecError as error:
        [diagnostic] = error.diagnostics
        assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("E012", 2, 6)
    else:
        raise AssertionError("a 400-term sum checked")
