"""Labels for any checkpoint: quoted keys (`"block1-0":`), numeric labels at any depth, dotted
labels that place an item in a scope below the current one (`classifier.cbr:`, reopening a
labelled group), how unlabelled groups scope labels, and duplicate keys as located errors.

The keys are held to a module written by hand with plain PyTorch (its `state_dict()`, in order,
and its forward on the same weights), to the emitted source, to the ONNX initializers and to the
summary's paths."""

import pytest

import cnnspec
from cnnspec.diagnostics import SpecError
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec

HEAD = """input x: 3x16x16
features: { conv 8 3x3 pad=1; bn; relu }
"block1-0": conv 16 3x3 pad=1
classifier.cbr: { conv 16 1x1 bias=false; bn; relu }
classifier.cbr.3: conv 16 1x1         # a numeric label three deep, in a group reopened
heads.0: conv 4 1x1                   # a container made by the dotted label
heads.1: conv 4 1x1
features.3: conv 8 1x1                # a later layer kept in the first scope, as its checkpoint has it
avgpool global
flatten
classifier.fc: linear 10
"""


def reference_module():
    """HEAD written by hand in PyTorch: where each module is kept differs from when it runs."""
    from torch import nn

    class Reference(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(4, 8, 1))
            self.add_module("block1-0", nn.Conv2d(8, 16, 3, padding=1))
            self.classifier = nn.Module()
            self.classifier.cbr = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                                nn.Conv2d(16, 16, 1))
            self.classifier.fc = nn.Linear(8, 10)
            self.heads = nn.ModuleList([nn.Conv2d(16, 4, 1), nn.Conv2d(4, 4, 1)])

        def forward(self, x):
            x = self.features[2](self.features[1](self.features[0](x)))
            x = self.classifier.cbr(getattr(self, "block1-0")(x))
            x = self.features[3](self.heads[1](self.heads[0](x)))
            return self.classifier.fc(x.mean((2, 3)))

    return Reference()


def test_keys_and_outputs_equal_a_module_written_by_hand():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(HEAD)
    reference = reference_module().eval()
    built = network.to_torch(seed=0).eval()
    assert [(k, tuple(v.shape)) for k, v in built.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    with torch.no_grad():
        for tensor in reference.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    built.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(built(x), reference(x))
    assert network.params == sum(p.numel() for p in reference.parameters())


def test_the_emitted_source_and_onnx_carry_the_same_keys():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx
    import onnxruntime
    import torch
    from test_torch_source import emitted_runs_as_to_torch

    network = cnnspec.loads(HEAD)
    emitted_runs_as_to_torch(network)
    source = network.to_torch_source()
    assert "self.add_module('block1-0'" in source and "self.heads = nn.Module()" in source
    built = network.to_torch(seed=0).eval()
    weights = {k: v.numpy() for k, v in built.state_dict().items()}
    model = network.to_onnx(weights=weights, fold_bn=False)
    onnx.checker.check_model(model, full_check=True)
    initializers = {i.name for i in model.graph.initializer}
    assert initializers == {k for k in weights if not k.endswith("num_batches_tracked")}
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        np.testing.assert_allclose(out, built(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_the_summary_names_each_layer_by_its_key():
    network = cnnspec.loads(HEAD)
    keyed = [r.path for r in network.rows if r.params]
    assert keyed == ["features.0", "features.1", "block1-0", "classifier.cbr.0", "classifier.cbr.1", "classifier.cbr.3",
                     "heads.0", "heads.1", "features.3", "classifier.fc"]
    text = network.summary(format="csv")
    assert "block1-0" in text and "classifier.cbr.3" in text


def test_labels_print_and_format_back_to_the_same_spec():
    text = HEAD + '"when": relu\n"a b.c-d": relu\n0: identity\nresidual { relu } shortcut "down-1": { relu }\n'
    printed = print_spec(parse_text(text, "s.cnn"))
    assert '"block1-0": conv' in printed and "classifier.cbr.3: conv" in printed and '"a b.c-d": relu' in printed
    assert '"when": relu' in printed and 'shortcut "down-1": {' in printed
    assert print_spec(parse_text(printed, "s.cnn")) == printed
    assert [r.path for r in cnnspec.loads(printed).rows] == [r.path for r in cnnspec.loads(text).rows]


@pytest.mark.parametrize("where", [
    "{ LABEL }", "when (true) { LABEL }", "when (false) { relu } else { LABEL }", "{ LABEL } * 1",
    "residual { LABEL }", "concat { { LABEL } }", "add { { LABEL } }", "scale { LABEL; sigmoid }", "*part()",
])
def test_an_unlabelled_group_splices_its_labels_in_every_position(where):
    # the label is a key of the enclosing scope, `stage`, wherever the unlabelled group stands
    text = ("input x: 4x8x8\nblock part() { gate: conv 4 1x1 }\n"
            f"stage: {{ conv 4 1x1; {where.replace('LABEL', 'gate: conv 4 1x1')} }}\n")
    network = cnnspec.loads(text)
    assert "stage.gate" in {r.path for r in network.rows}


def test_a_labelled_group_nests():
    network = cnnspec.loads("input x: 4x8x8\nstage: { conv 4 1x1; inner: { gate: conv 4 1x1 } }\n")
    assert [r.path for r in network.rows] == ["stage.0", "stage.inner.gate"]


def diagnostics(text: str):
    with pytest.raises(SpecError) as error:
        cnnspec.loads("input x: 3x8x8\n" + text)
    return error.value.diagnostics


@pytest.mark.parametrize("text, code, line, column, first", [
    ('"block1-0": relu\nblock1-0: relu', "E001", 3, 7, None),  # unquoted, `-` is a minus sign
    ('"a-b": relu\n"a-b": relu', "E125", 3, 1, (2, 1)),
    ("a.b: relu\na.b: relu", "E125", 3, 1, (2, 1)),
    ("s: { conv 8 1x1 }\ns.0: relu", "E125", 3, 1, (2, 6)),              # a position taken
    ("s: { 1: conv 8 1x1; relu }", "E125", 2, 21, (2, 6)),              # the position after a label
    ("a: conv 8 1x1\na.b: relu", "E128", 3, 1, (2, 1)),                 # a layer holds no modules
    ("a.b: relu\na: relu", "E125", 3, 1, (2, 1)),
    ('"": relu', "E128", 2, 1, None),
    ('"a..b": relu', "E128", 2, 1, None),
    ('"x{}": relu', "E128", 2, 1, None),
    ("forward.x: relu", "E127", 2, 1, None),
])
def test_bad_keys_are_located(text, code, line, column, first):
    found = diagnostics(text)
    assert found[0].code == code
    if line is not None:
        assert (found[0].span.line, found[0].span.column) == (line, column)
    if first is not None:
        assert [(lab.span.line, lab.span.column) for lab in found[0].labels] == [first]


def test_an_unquoted_label_with_a_minus_says_to_quote_it():
    (found,) = diagnostics("block1-0: relu")
    assert found.message == "a label holding `-` is written in quotes" and found.help == 'write `"block1-0":`'


def test_a_quoted_label_takes_any_key_pytorch_takes():
    torch = pytest.importorskip("torch")
    keys = ["block1-0", "a b", "ü", "0x1", "3"]
    text = "input x: 3x8x8\n" + "".join(f'"{key}": conv 3 1x1\n' for key in keys)
    built = cnnspec.loads(text).to_torch()
    by_hand = torch.nn.Module()
    for key in keys:
        by_hand.add_module(key, torch.nn.Conv2d(3, 3, 1))
    assert list(built.state_dict()) == list(by_hand.state_dict())
