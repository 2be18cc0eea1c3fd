"""What an empty or false branch means in every structure (README, "The language"; docs/errors/E205.md).

A structure that checks is built with `to_torch()` and run: the output shape PyTorch gives is
the one cnnspec predicts, and where the meaning is a known function of the input (an identity
shortcut, a branch that drops out) the values are compared with a spec written without it.
One that does not check is E205 at the branch.
"""

import pytest

import cnnspec
from cnnspec.diagnostics import SpecError

torch = pytest.importorskip("torch")

BLOCKS = """
block nothing() { }
block maybe(use) { when (use) { conv 8 1x1 } }
"""

#: spec body (after `input x: 16x8x8` and BLOCKS) -> the output shape it means
VALID = {
    # a `when` choosing nothing contributes no branch: concat of one branch is that branch
    "concat_false_when": ("concat { conv 8 1x1; when (false) { conv 8 1x1 } }", (8, 8, 8)),
    "concat_empty_arm": ("concat { conv 8 1x1; when (true) { } else { conv 4 1x1 } }", (8, 8, 8)),
    "concat_labelled_false_when": ("concat { conv 8 1x1; b: when (false) { conv 8 1x1 } }", (8, 8, 8)),
    "concat_else_arm": ("concat { conv 8 1x1; when (false) { conv 8 1x1 } else { conv 4 1x1 } }", (12, 8, 8)),
    "concat_true_when": ("concat { conv 8 1x1; when (true) { conv 4 1x1 } }", (12, 8, 8)),
    "concat_identity": ("concat { conv 8 1x1; identity }", (24, 8, 8)),
    "add_false_when": ("add { conv 16 1x1; when (false) { conv 16 1x1 } }", (16, 8, 8)),
    # an empty shortcut, or one whose `when` is false, is the identity
    "residual_empty_shortcut": ("residual { conv 16 3x3 pad=1 } shortcut { }", (16, 8, 8)),
    "residual_false_shortcut": ("residual { conv 16 3x3 pad=1 } shortcut when (false) { conv 16 1x1 }", (16, 8, 8)),
    "residual_labelled_empty_shortcut": ("residual { conv 16 3x3 pad=1 } shortcut down: { }", (16, 8, 8)),
    # in a sequence, an empty part is the identity
    "labelled_empty_group": ("g: { }\nconv 8 1x1", (8, 8, 8)),
    "repeated_empty_group": ("{ } * 3\nconv 8 1x1", (8, 8, 8)),
    "false_when_in_sequence": ("when (false) { conv 8 1x1 }\nconv 4 1x1", (4, 8, 8)),
    "empty_else_in_sequence": ("when (false) { conv 8 1x1 } else { }\nconv 4 1x1", (4, 8, 8)),
    "empty_block_in_sequence": ("nothing()\nconv 4 1x1", (4, 8, 8)),
    "false_block_in_sequence": ("maybe(false)\nconv 4 1x1", (4, 8, 8)),
    "block_in_concat": ("concat { conv 8 1x1; maybe(true) }", (16, 8, 8)),
    "scale_in_false_when": ("when (false) { scale { avgpool global; conv 16 1x1; sigmoid } }\nconv 4 1x1", (4, 8, 8)),
}

#: the same network written without the part that means nothing, for comparing values
EQUIVALENT = {
    "concat_false_when": "concat { conv 8 1x1 }",
    "concat_labelled_false_when": "concat { conv 8 1x1 }",
    "add_false_when": "add { conv 16 1x1 }",
    "residual_empty_shortcut": "residual { conv 16 3x3 pad=1 }",
    "residual_false_shortcut": "residual { conv 16 3x3 pad=1 }",
    "residual_labelled_empty_shortcut": "residual { conv 16 3x3 pad=1 }",
}


def spec(body: str) -> str:
    return "input x: 16x8x8\n" + BLOCKS + body + "\n"


def run(text: str, x):
    network = cnnspec.loads(text, path="branches.cnn")
    model = network.to_torch(seed=0).eval()
    with torch.no_grad():
        return network, model(x)


@pytest.mark.parametrize("name", sorted(VALID))
def test_an_empty_or_false_branch_means_what_pytorch_computes(name):
    body, shape = VALID[name]
    x = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    network, out = run(spec(body), x)
    assert network.output_shape == shape
    assert tuple(out.shape) == (2, *shape)
    if name in EQUIVALENT:
        _, reference = run(spec(EQUIVALENT[name]), x)
        torch.testing.assert_close(out, reference)


def test_a_residual_with_an_empty_shortcut_adds_its_input():
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(2))
    network = cnnspec.loads(spec("residual { conv 16 3x3 pad=1 } shortcut { }"))
    model = network.to_torch(seed=0).eval()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        torch.testing.assert_close(model(x), conv(x) + x)


#: spec body -> (line of the E205 within the body, the message's start)
EMPTY = {
    "concat_empty_group": ("concat {\nconv 8 1x1\n{ }\n}", 3, "a branch of `concat` has no layers"),
    "concat_labelled_empty": ("concat {\nconv 8 1x1\nb: { }\n}", 3, "a branch of `concat` has no layers"),
    "concat_repeated_empty": ("concat {\nconv 8 1x1\n{ } * 2\n}", 3, "a branch of `concat` has no layers"),
    "concat_empty_block": ("concat {\nconv 8 1x1\nnothing()\n}", 3, "a branch of `concat` has no layers"),
    "concat_false_block": ("concat {\nconv 8 1x1\nmaybe(false)\n}", 3, "a branch of `concat` has no layers"),
    "concat_no_branch": ("concat { }", 1, "`concat` has no branches"),
    "concat_only_false_whens": ("concat {\nwhen (false) { conv 8 1x1 }\n}", 1, "`concat` has no branches"),
    "add_empty_group": ("add {\nconv 16 1x1\n{ }\n}", 3, "a branch of `add` has no layers"),
    "add_no_branch": ("add { }", 1, "`add` has no branches"),
    "scale_empty": ("scale { }", 1, "`scale` has no layers"),
    "scale_false_when": ("scale { when (false) { avgpool global; conv 16 1x1; sigmoid } }", 1, "`scale` has no layers"),
    "residual_empty_main": ("residual { }", 1, "the main path of `residual` has no layers"),
    "residual_false_main": ("residual { when (false) { conv 16 3x3 pad=1 } } shortcut { conv 16 1x1 }", 1,
                            "the main path of `residual` has no layers"),
}


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_a_branch_without_layers_is_a_located_error(name):
    body, line, message = EMPTY[name]
    with pytest.raises(SpecError) as caught:
        cnnspec.loads(spec(body), path="branches.cnn")
    (error,) = caught.value.errors
    assert error.code == "E205" and error.message.startswith(message)
    offset = spec("").count("\n") - 1  # the body starts on the line after the blocks
    assert error.span.line == offset + line
    assert error.help


NOTES = {
    "scale { when (false) { avgpool global; conv 16 1x1; sigmoid } }": "its `when` chose nothing",
    "concat { conv 8 1x1; maybe(false) }": "the block it calls expands to no layers here",
    "concat { when (false) { conv 8 1x1 }; when (false) { relu } }": "its 2 branches are `when`s that chose nothing",
}


@pytest.mark.parametrize("body", sorted(NOTES))
def test_the_note_says_why_a_branch_is_empty(body):
    with pytest.raises(SpecError) as caught:
        cnnspec.loads(spec(body))
    assert caught.value.errors[0].notes == (NOTES[body],)
