"""What a diagnostic tells a new user: where it is, what led there, and a help that is true."""

import pytest

import cnnspec
from cnnspec.diagnostics import SpecError


def errors_of(text: str) -> list:
    with pytest.raises(SpecError) as caught:
        cnnspec.loads(text, path="net.cnn")
    return caught.value.errors


# ---------------------------------------------------------------- str(SpecError)

def test_str_of_spec_error_carries_place_and_help():
    with pytest.raises(SpecError) as caught:
        cnnspec.loads("input x: 3x8x8\nconv 4 3x3 pad=1\nconv 4 3x3 bias=False", path="net.cnn")
    first = caught.value.errors[0]
    text = str(caught.value)
    assert text.startswith(f"net.cnn:3:17: error[{first.code}]: {first.message}")
    assert f"(help: {first.help})" in text


def test_str_of_spec_error_counts_the_other_errors():
    with pytest.raises(SpecError) as caught:
        cnnspec.loads("input x: 3x8x8\nconv 4 3x3 colour=1\nconv 4 3x3 shade=2", path="net.cnn")
    assert len(caught.value.errors) == 2
    assert str(caught.value).startswith("net.cnn:2:12: error[E102]")
    assert str(caught.value).endswith("(and 1 more error)")


def test_str_of_spec_error_without_a_help_or_a_place():
    from cnnspec.diagnostics import Diagnostic

    error = SpecError([Diagnostic(code="E303", severity="error", message="too big")])
    assert str(error) == "error[E303]: too big"


# ---------------------------------------------------------------- the call chain

def chain(diagnostic) -> list[tuple[int, str]]:
    return [(label.span.line, label.message) for label in diagnostic.labels
            if label.message.startswith("in ")]


BODY_ERRORS = {
    # E201: a residual whose sides disagree, in the call that changes the channels
    "E201": ("block b(c) {\n  residual { conv c 1x1 }\n}\nb(3)\nb(8)", 5),
    # E210: a kernel larger than the map it meets in the second call
    "E210": ("block b(c) {\n  conv c 5x5\n}\nb(4)\nb(4)", 5),
    # E105: the kernel where the channel count belongs
    "E105": ("block b(c) {\n  conv 3x3\n}\nb(4)", 4),
    # E106: a layer's missing argument
    "E106": ("block b(c) {\n  linear\n}\nb(4)", 4),
    # E103: a value out of range, from the call's argument
    "E103": ("block b(p) {\n  dropout p\n}\nb(0.5)\nb(2)", 5),
}


@pytest.mark.parametrize("code", sorted(BODY_ERRORS))
def test_errors_inside_a_block_point_at_the_call(code):
    body, call_line = BODY_ERRORS[code]
    found = [e for e in errors_of("input x: 3x8x8\n" + body) if e.code == code]
    assert found, code
    # the body starts on line 2 of the spec: lines in BODY_ERRORS count from the block
    assert chain(found[0]) == [(call_line + 1, "in this call")]


def test_every_level_of_a_nested_call_is_shown():
    text = ("input x: 3x16x16\n"
            "block leaf(c) {\n  conv c 7x7\n}\n"         # 2-4
            "block mid(c) {\n  leaf(c)\n}\n"             # 5-7
            "block top(c) {\n  conv c 3x3 stride=2 pad=1\n  mid(c)\n}\n"   # 8-11
            "top(4)\n"                                   # 12: 16 -> 8 -> 2
            "top(4)\n")                                  # 13: 2 -> 1, then 7x7 fails
    (error,) = errors_of(text)
    assert error.code == "E210" and error.span.line == 3
    assert chain(error) == [(13, "in this call"), (10, "in this call"), (6, "in this call")]  # outermost first


def test_a_failing_copy_of_a_repeat_is_named():
    text = "input x: 3x32x32\nblock basic(c) {\n  conv c 3x3 stride=2 pad=1\n  conv c 5x5\n}\nlayer2: basic(16) * 3\n"
    (error,) = errors_of(text)
    # 32 -> 16 -> 12, 12 -> 6 -> 2, 2 -> 1: the third copy's 5x5 fails
    assert chain(error) == [(6, "in copy 3 of 3 of this call")]


def test_a_repeated_group_names_its_copy_and_the_call():
    text = "input x: 3x32x32\nblock b(c) {\n  conv c 5x5\n}\n{ b(8); relu } * 9\n"
    (error,) = errors_of(text)
    # copy k meets a 32 - 4(k - 1) map, under 5 first at k = 8
    assert chain(error) == [(5, "in copy 8 of 9"), (5, "in this call")]


def test_numbered_copies_are_named():
    text = "input x: 3x32x32\nblock b(c) {\n  conv c 9x9\n}\nstage{}: b(8) * 4\n"
    (error,) = errors_of(text)
    # 32 -> 24 -> 16 -> 8 -> fails in the fourth copy, `stage4`
    assert chain(error) == [(5, "in copy 4 of 4 of this call")]


def test_errors_outside_calls_have_no_chain():
    (error,) = errors_of("input x: 3x4x4\nconv 8 5x5")
    assert chain(error) == []


def test_an_expect_inside_a_block_points_at_its_call_once():
    text = "input x: 3x8x8\nblock b(c) {\n  conv c 3x3\n  expect params < 10\n}\nb(4)\n"
    (error,) = errors_of(text)
    assert error.code == "E402" and chain(error) == [(6, "in this call")]


def test_labels_on_one_line_share_its_quote():
    text = "input x: 3x32x32\nblock b(c) {\n  conv c 5x5\n}\n{ b(8); relu } * 9\n"
    with pytest.raises(SpecError) as caught:
        cnnspec.loads(text, path="net.cnn")
    rendered = caught.value.render()
    assert rendered.count("5 | { b(8); relu } * 9") == 1
    assert "in copy 8 of 9" in rendered and "in this call" in rendered
