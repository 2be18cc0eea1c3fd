"""What a diagnostic tells a new user: where it is, what led there, and a help that is true."""

import re

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
    from cnnspec.codes import Code
    from cnnspec.diagnostics import Diagnostic

    error = SpecError([Diagnostic(code=Code.OVER_MEMORY_BUDGET, message="too big")])
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


# ---------------------------------------------------------------- help a new user can act on

def only_error(text: str):
    (error,) = errors_of(text)
    return error


def test_a_python_boolean_is_told_to_be_lowercase():
    error = only_error("input x: 3x8x8\nconv 4 3x3 bias=False")
    assert error.code == "E107" and error.help == "booleans are lowercase: write `false`"
    call = only_error("input x: 3x8x8\nblock b(flag) { when (flag) { relu } }\nb(True)")
    assert call.help == "booleans are lowercase: write `true`"


@pytest.mark.parametrize("text", ["when (False) { relu }", "residual { relu } shortcut when (False) { relu }"])
def test_a_python_boolean_in_a_condition_is_told_to_be_lowercase(text):
    assert only_error(f"input x: 3x8x8\n{text}").help == "booleans are lowercase: write `false`"


def test_a_python_boolean_for_a_number_says_it_takes_a_number():
    assert only_error("input x: 4x8x8\nconv 4 3x3 groups=True").help == "it takes a number"


def test_a_boolean_option_says_it_takes_true_or_false():
    error = only_error("input x: 3x8x8\nconv 4 3x3 bias=yes")
    assert error.help == "it takes `true` or `false`"
    # a numeric option keeps its own help
    assert only_error("input x: 3x8x8\nconv 4 3x3 stride=two").help == "it takes a number"


def test_expect_with_one_equals_sign_suggests_two():
    error = only_error("input x: 3x8x8\nconv 4 3x3\nexpect params = 100")
    assert error.code == "E001" and (error.span.line, error.span.column) == (3, 15)
    assert error.help == "write `==`, such as `expect params == 100`"
    # an option's `=` keeps its help
    assert "key=value" in only_error("input x: 3x8x8\nconv 4 3x3 = 1").help


@pytest.mark.parametrize("written,message,fixes", [
    ("expect output 4x6x6", "`expect output` is not an expectation: only `expect shape` takes a shape",
     ["expect shape 4x6x6"]),
    ("expect params 4x6x6", "`expect params` takes a comparison, such as `expect params < 5M`", ["expect shape 4x6x6"]),
    ("expect params 112", "`expect params` takes a comparison, such as `expect params < 5M`",
     ["expect params == 112", "expect shape 112"]),
])
def test_a_shape_after_another_word_than_shape_says_what_to_write(written, message, fixes):
    error = only_error(f"input x: 3x8x8\nconv 4 3x3\n{written}")
    assert error.code == "E403" and error.message == message
    assert re.findall(r"`([^`]+)`", error.help) == fixes
    # each fix is a statement that parses; the first holds for this network (112 parameters)
    cnnspec.loads(f"input x: 3x8x8\nconv 4 3x3\n{fixes[0]}")


@pytest.mark.parametrize("written,fixed", [("5m", "5M"), ("1.9g", "1.9G"), ("2t", "2T")])
def test_a_lowercase_unit_in_expect_is_told_its_case(written, fixed):
    error = only_error(f"input x: 3x8x8\nconv 4 3x3\nexpect macs < {written}")
    assert error.code == "E001" and error.span.column == len("expect macs < ") + len(written)
    assert error.help.endswith(f"write `{fixed}`")
    # the fixed spelling checks
    cnnspec.loads(f"input x: 3x8x8\nconv 4 3x3\nexpect macs < {fixed}")


@pytest.mark.parametrize("written,sizes", [("16x-1", "16, -1"), ("4x4x-1", "4, 4, -1")])
def test_a_negative_size_in_dimensions_says_how_to_write_it(written, sizes):
    error = only_error(f"input x: 16x8x8\nreshape {written}")
    assert error.code == "E004" and "unknown name" not in error.message
    assert (error.span.column, error.span.end_column) == (9, 9 + len(written))
    assert error.help == f"give it as an option, with commas: `reshape shape=({sizes})`"
    # the help's spelling is valid and gives what was meant
    fixed = cnnspec.loads(f"input x: 16x8x8\nreshape shape=({sizes})")
    assert fixed.output_shape == {"16, -1": (16, 64), "4, 4, -1": (4, 4, 64)}[sizes]


PYTORCH = {"batchnorm": "bn", "BatchNorm2d": "bn", "BatchNorm1d": "bn", "convtranspose": "deconv",
           "ConvTranspose2d": "deconv", "ReLU": "relu", "Conv2d": "conv", "Conv3d": "conv", "MaxPool2d": "maxpool",
           "Linear": "linear", "Dropout": "dropout", "Dropout2d": "dropout2d", "LeakyReLU": "leaky_relu",
           "LayerNorm": "ln", "GroupNorm": "groupnorm", "AvgPool2d": "avgpool", "SiLU": "silu",
           "Hardswish": "hardswish", "Sigmoid": "sigmoid", "Flatten": "flatten", "Upsample": "upsample",
           "InstanceNorm2d": "instancenorm", "LocalResponseNorm": "lrn", "ChannelShuffle": "channel_shuffle"}


@pytest.mark.parametrize("name", sorted(PYTORCH))
def test_pytorch_names_get_a_did_you_mean(name):
    error = only_error(f"input x: 3x8x8\n{name}")
    assert error.code == "E101"
    assert error.help.startswith(f"did you mean `{PYTORCH[name]}`?")


def test_every_alias_names_a_kind_and_its_written_forms_check():
    from cnnspec.layers import REGISTRY
    from cnnspec.layers.aliases import pytorch_names

    for kind, written in pytorch_names().values():
        assert kind in REGISTRY
        if written:
            assert written.split()[0] == kind
            cnnspec.loads(f"input x: 3x16x16\n{written}")


def test_a_block_of_a_pytorch_name_is_a_block():
    network = cnnspec.loads("input x: 3x8x8\nblock ReLU() { relu }\nReLU()")
    assert network.output_shape == (3, 8, 8)


# ---------------------------------------------------------------- contracts at another input

CONTRACTS = """input x: 3x8x8
expect shape 3x8x8
conv 4 3x3
expect shape 4x6x6
expect params == 112
expect macs == 3888
expect memory < 1k
"""


def test_an_overridden_input_skips_the_contracts_it_changes():
    network = cnnspec.loads(CONTRACTS, input=(3, 16, 16))
    # 4 x 14 x 14 outputs of 3 x 3 x 3 MACs each
    assert network.macs == 4 * 14 * 14 * 27 and network.output_shape == (4, 14, 14)
    assert [st.metric for st in network.skipped_expects] == ["shape", "shape", "macs", "memory"]


def test_params_contracts_still_hold_at_another_input():
    with pytest.raises(SpecError) as caught:
        cnnspec.loads(CONTRACTS.replace("== 112", "== 100"), input=(3, 16, 16))
    assert [e.code for e in caught.value.errors] == ["E402"]


def test_the_declared_input_checks_every_contract():
    assert cnnspec.loads(CONTRACTS, input=(3, 8, 8)).skipped_expects == ()
    with pytest.raises(SpecError) as caught:
        cnnspec.loads(CONTRACTS.replace("4x6x6", "4x7x7"), input=(3, 8, 8))
    assert [e.code for e in caught.value.errors] == ["E401"]


def test_check_notes_the_skipped_contracts(tmp_path):
    from click.testing import CliRunner

    from cnnspec.cli import main

    spec = tmp_path / "net.cnn"
    spec.write_text(CONTRACTS)
    result = CliRunner().invoke(main, ["check", "--input", "3x16x16", str(spec)])
    assert result.exit_code == 0, result.output
    assert ("note: 4 `expect` contracts on the shape, MACs or memory not checked at the overridden input 3x16x16"
            in result.output)
    plain = CliRunner().invoke(main, ["check", str(spec)])
    assert plain.exit_code == 0 and "note:" not in plain.output
