"""Weight sharing (`use LABEL`): a labelled layer, group or block call applied again to another
tensor is the same module called again. One set of state_dict keys; parameters and buffers counted
once, MACs and activations per application (against PyTorch's own tensors and hooks); onnxruntime
equal to PyTorch with one initializer per parameter read by both applications; the emitted source
calls the same attribute twice and equals to_torch(); shape-incompatible and unknown uses are
located."""

import pytest

import cnnspec
from cnnspec.diagnostics import SpecError

SHARED = """network shared
input a: 3x16x16
input b: 3x16x16
fa = encoder: { conv 8 3x3 pad=1 bias=false; bn; relu; maxpool 2x2 }
fb = b -> use encoder
d = add(fa, fb)
head: conv 4 1x1
"""

#: one head over two levels of a pyramid (RetinaNet's): the same convs at 16x16 and at 8x8
PYRAMID = """network pyramid
input x: 3x32x32
c1 = conv 8 3x3 stride=2 pad=1
c2 = conv 8 3x3 stride=2 pad=1
p1 = c1 -> head: { conv: conv 8 3x3 pad=same; relu; scale_1: layerscale init=0.5 }
p2 = c2 -> use head
q2 = c2 -> use head.conv
output p1, p2, q2
"""

#: a labelled block call applied again inside another block's body, and a dotted label
BLOCKS = """network blocks
block cbr(c) { conv c 3x3 pad=1 bias=false; bn; relu }
block twice(c) {
  unit: cbr(c)
  use unit
}
input x: 4x8x8
stem: twice(4)
trunk: { first: cbr(4); use first }
use stem.unit * 2
"""


def built(text: str):
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(text)
    model = network.to_torch(seed=0).eval()
    return torch, network, model


@pytest.mark.parametrize("text", [SHARED, PYRAMID, BLOCKS])
def test_parameters_and_buffers_once_as_pytorch_counts_them(text):
    torch, network, model = built(text)
    assert network.params == sum(p.numel() for p in model.parameters())
    assert network.buffers == sum(b.numel() for b in model.buffers() if b.dtype.is_floating_point)
    keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert len(keys) == len(set(keys))


def test_the_shared_module_is_one_module_called_twice_as_functional_pytorch_computes_it():
    torch, network, model = built(SHARED)
    import torch.nn.functional as F

    w = model.state_dict()
    assert sorted(w) == ["encoder.0.weight", "encoder.1.bias", "encoder.1.num_batches_tracked",
                         "encoder.1.running_mean", "encoder.1.running_var", "encoder.1.weight",
                         "head.bias", "head.weight"]
    a, b = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)

    def encoder(x):
        y = F.conv2d(x, w["encoder.0.weight"], padding=1)
        y = F.batch_norm(y, w["encoder.1.running_mean"], w["encoder.1.running_var"], w["encoder.1.weight"],
                         w["encoder.1.bias"])
        return F.max_pool2d(F.relu(y), 2)

    with torch.no_grad():
        torch.testing.assert_close(model(a, b), F.conv2d(encoder(a) + encoder(b), w["head.weight"], w["head.bias"]))
    # in train mode the batch norm is the module called twice, as in PyTorch: its running
    # statistics are updated by each call, the batch of `a` then the batch of `b`
    model.train()
    model(a, b)
    assert int(model.state_dict()["encoder.1.num_batches_tracked"]) == 2


def test_macs_and_activations_are_counted_per_application_as_the_hooks_measure():
    torch, network, model = built(SHARED)
    from oracle import measure_activations

    macs = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            macs.append(output[0].numel() * module.weight[0].numel())

    for module in model.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16))
    assert len(macs) == 3 and network.macs == sum(macs) == 2 * 55_296 + 8 * 8 * 4 * 8
    assert measure_activations(network, network.name) == []
    summary = network.summary()
    assert "use encoder; from b" in summary


def test_a_head_shared_over_two_sizes_with_its_padding_and_layer_scale():
    torch, network, model = built(PYRAMID)
    import torch.nn.functional as F

    assert network.output_shapes == {"p1": (8, 16, 16), "p2": (8, 8, 8), "q2": (8, 8, 8)}
    w = model.state_dict()
    assert sorted(w) == ["0.bias", "0.weight", "1.bias", "1.weight", "head.conv.bias", "head.conv.weight",
                         "head.scale_1"]
    x = torch.randn(2, 3, 32, 32)

    def head(t, scaled=True):
        # `pad=same` with a 3x3 kernel pads 1 on each side
        y = F.conv2d(t, w["head.conv.weight"], w["head.conv.bias"], padding=1)
        return w["head.scale_1"] * F.relu(y) if scaled else y

    with torch.no_grad():
        out = model(x)
        c1 = F.conv2d(x, w["0.weight"], w["0.bias"], stride=2, padding=1)
        c2 = F.conv2d(c1, w["1.weight"], w["1.bias"], stride=2, padding=1)
    torch.testing.assert_close(out["p1"], head(c1))
    torch.testing.assert_close(out["p2"], head(c2))
    torch.testing.assert_close(out["q2"], head(c2, scaled=False))


@pytest.mark.parametrize("text", [SHARED, PYRAMID, BLOCKS])
def test_onnx_shares_each_initializer_and_agrees_with_torch_and_the_emitted_source(text):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx
    from test_torch_source import emitted_runs_as_to_torch

    from cnnspec.backends.runtime import session
    from cnnspec.backends.weights import random_weights

    network = cnnspec.loads(text)
    weights = random_weights(network, seed=0, statistics=True)
    reference = network.to_torch().eval()
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, *shape)).astype(np.float32) for shape in network.input_shapes.values()]
    with torch.no_grad():
        expected = reference(*map(torch.from_numpy, xs))
    expected = list(expected.values()) if isinstance(expected, dict) else [expected]
    for fold in (True, False):
        model = network.to_onnx(weights=dict(weights), fold_bn=fold)
        onnx.checker.check_model(model, full_check=True)
        names = [i.name for i in model.graph.initializer]
        assert len(names) == len(set(names))
        if not fold:
            # every parameter and buffer is one initializer, under its state_dict key
            assert {k for k in weights if not k.endswith("num_batches_tracked")} <= set(names)
        actual = session(model, threads=1).run(None, {i.name: x for i, x in zip(model.graph.input, xs)})
        for got, want in zip(actual, expected):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
    emitted_runs_as_to_torch(network)


def test_the_emitted_source_calls_the_shared_module_twice():
    source = cnnspec.loads(SHARED).to_torch_source()
    assert source.count("self.encoder(") == 2 and source.count("self.encoder = ") == 1
    blocks = cnnspec.loads(BLOCKS).to_torch_source()
    assert blocks.count("self.unit(x)") == 2


def test_one_initializer_is_read_by_both_applications():
    pytest.importorskip("onnx")
    model = cnnspec.loads(SHARED).to_onnx(fold_bn=False)
    readers = [node.op_type for node in model.graph.node if "encoder.0.weight" in node.input]
    assert readers == ["Conv", "Conv"]


def codes(text: str) -> list[tuple[str, int, int]]:
    try:
        diagnostics = cnnspec.loads(text).diagnostics
    except SpecError as error:
        diagnostics = error.diagnostics
    return sorted((d.code, d.span.line, d.span.column) for d in diagnostics)


@pytest.mark.parametrize("text, expected", [
    ("input a: 3x8x8\nenc: conv 4 3x3\nuse encd\n", [("E152", 3, 5)]),
    ("input a: 3x8x8\nhead: { enc: conv 3 1x1 }\nuse enc\n", [("E152", 3, 5)]),
    ("input a: 3x8x8\nenc: { conv 3 1x1; use enc }\n", [("E152", 2, 24)]),
    ("input a: 3x8x8\nuse enc\nenc: conv 3 1x1\n", [("E152", 2, 5)]),
    ("input a: 3x8x8\nenc: conv 3 1x1\nx: use enc\n", [("E128", 3, 1)]),
    ("input a: 3x8x8\ninput b: 1x8x8\nf = enc: { conv 4 3x3; bn }\ng = b -> use enc\nadd(f, g)\n",
     [("E153", 4, 10)]),
    ("input a: 3x8x8\nf = enc: { flatten; linear 4 }\ng = a -> maxpool 2x2, use enc\nadd(f, g)\n",
     [("E153", 3, 23)]),
    ("input a: 3x8\ninput b: 3x8x8\nf = enc: bn\ng = b -> use enc\nconcat(f, f)\n",
     [("E153", 4, 10), ("W002", 4, 1)]),
    ("input a: 3x8x8\nenc: conv 3 3x3 pad=1\nuse enc * 2\n", []),
    # a module whose first application failed is not reported again where it is applied
    ("input a: 3x8x8\nenc: conv 4 9x9\nuse enc\n", [("E210", 2, 13)]),
])
def test_sharing_mistakes_are_located(text, expected):
    assert codes(text) == expected


def test_an_incompatible_use_names_both_places_and_the_parameter():
    with pytest.raises(SpecError) as raised:
        cnnspec.loads("input a: 3x8x8\ninput b: 1x8x8\nf = enc: { conv 4 3x3; bn }\ng = b -> use enc\nadd(f, g)\n")
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.message == ("`use enc` on 1x8x8 would give `enc.0.weight` the shape 4x1x3x3, where its first "
                                  "application has 4x3x3x3")
    assert [(label.span.line, label.message) for label in diagnostic.labels] == [(3, "first applied here, to 3x8x8")]


def test_printing_round_trips_and_the_readme_example_checks():
    import re
    import textwrap
    from pathlib import Path

    from cnnspec.frontend.formatter import format_text

    for text in (SHARED, PYRAMID, BLOCKS, 'input x: 3x8x8\n"a-b": conv 3 1x1\nuse "a-b"\n'):
        assert format_text(text) == text
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = [textwrap.dedent(b) for b in re.findall(r"```cnn\n(.*?)```", readme, re.S) if "use encoder" in b]
    network = cnnspec.loads(example)
    assert network.diagnostics == []
    assert network.params == 8 * 3 * 9 + 2 * 8 + 16 * 8 * 9 + 16 + 17


@pytest.mark.parametrize("text", [SHARED, BLOCKS])
def test_receptive_fields_of_each_application_equal_the_gradient_oracle(text):
    pytest.importorskip("torch")
    from test_receptive_field_oracle import assert_clean, oracle

    assert_clean(oracle(cnnspec.loads(text)))


def siamese_keys() -> list[str]:
    keys = []
    for stage in range(3):
        keys += [f"encoder.{stage}.0.weight"] + [f"encoder.{stage}.1.{k}" for k in
                                                 ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    return keys + ["encoder.embed.weight", "encoder.embed.bias", "head.0.weight", "head.0.bias", "score.weight",
                   "score.bias"]


def test_the_zoo_siamese_network_holds_its_hand_worked_figures_in_pytorch():
    torch = pytest.importorskip("torch")
    network = cnnspec.load("zoo:siamese")
    assert network.input_shapes == {"left": (1, 64, 64), "right": (1, 64, 64)} and network.output_shape == (1,)
    model = network.to_torch(seed=0).eval()
    assert list(model.state_dict()) == siamese_keys()
    assert network.params == sum(p.numel() for p in model.parameters()) == 29_681
    assert network.buffers == sum(b.numel() for b in model.buffers() if b.dtype.is_floating_point) == 224
    macs = []

    def count(module, inputs, output):
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            weight = module.weight
            macs.append(output[0].numel() * (weight[0].numel() if isinstance(module, torch.nn.Conv2d) else weight.shape[1]))

    for module in model.modules():
        module.register_forward_hook(count)
    left, right = torch.randn(3, 1, 64, 64), torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        score = model(left, right)
        macs_once = sum(macs)
        # the score is of the squared difference of one encoder's embeddings: the same either way round
        torch.testing.assert_close(model(right, left), score)
    assert macs_once == network.macs == 20_064_288
    assert score.shape == (3, 1) and bool(((score > 0) & (score < 1)).all())


def test_the_zoo_siamese_network_exports_verifies_and_emits_the_same_module():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import onnx
    from test_torch_source import emitted_runs_as_to_torch

    from cnnspec.backends.runtime import verify_network

    network = cnnspec.load("zoo:siamese")
    model = network.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["left", "right"]
    # the shared convs, folded with their batch norms, read one initializer from both images' nodes
    readers = [node.name for node in model.graph.node if "encoder.0.0.weight" in node.input]
    assert len(readers) == 2
    assert verify_network(network).relative_l2 < 1e-5
    emitted_runs_as_to_torch(network)


def test_the_summary_folded_to_a_depth_keeps_a_row_per_application():
    network = cnnspec.loads(SHARED)
    lines = network.summary(depth=1).splitlines()
    encoder = [line for line in lines if line.startswith("encoder ")]
    assert len(encoder) == 2 and "232" in encoder[0] and "use encoder" in encoder[1]
    assert [r["macs"] for r in __import__("json").loads(network.summary("json", depth=1))["layers"]
            if r["name"] == "encoder"] == [55_296, 55_296]
