"""Exports with symbolic spatial sizes (`--dynamic hw`): the model onnxruntime runs at sizes other
than the declared one gives what PyTorch gives on a model built at that size with the same
weights; the sizes it takes are stated in the summary and the metadata; a network whose size is
fixed is refused with E220 at the layer that fixes it."""

import json
import os

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from click.testing import CliRunner  # noqa: E402
from conftest import SPECS  # noqa: E402
from strategies import run_examples  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.runtime import compare, session  # noqa: E402
from cnnspec.backends.weights import random_weights  # noqa: E402
from cnnspec.cli import main  # noqa: E402
from cnnspec.frontend.printer import print_spec  # noqa: E402

EXAMPLES = int(os.environ.get("CNNSPEC_EXAMPLES", 4))
#: the kinds whose static ONNX form writes a size down, each with random structures around it
KINDS = ("conv", "maxpool", "avgpool", "upsample", "reshape", "channel_shuffle", "groupnorm", "lrn", "ln", "chunk")

SMALL_UNET = """network small_unet
input x: 1x60x60
block double(c) {
  conv c 3x3; relu
  conv c 3x3; relu
}
double(4)
concat crop {
  identity
  { maxpool 2x2; double(8); deconv 4 2x2 stride=2 }
}
double(4)
out: conv 2 1x1
"""


def torch_at(text: str, dims, weights):
    """PyTorch's model of the spec checked at input `dims`, with `weights`: the reference."""
    model = cnnspec.loads(text, input=tuple(dims)).to_torch(memory_budget=None)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    return model.eval()


def agree_at_sizes(text: str, sizes: list[tuple[int, ...]], tolerance: float = 1e-4) -> int:
    network = cnnspec.loads(text)
    weights = random_weights(network, 0, statistics=True)
    sess = session(network.to_onnx(weights=weights, dynamic="hw"))
    rng = np.random.default_rng(0)
    for spatial in sizes:
        dims = (network.input_shape[0], *spatial)
        x = rng.standard_normal((2, *dims)).astype(np.float32)
        with torch.no_grad():
            expected = torch_at(text, dims, weights)(torch.from_numpy(x)).numpy()
        actual = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        assert actual.shape == expected.shape, (text, spatial)
        assert compare(actual, expected).relative_l2 < tolerance, (text, spatial)
    return len(sizes)


def check_random(spec_ir, shape, index):
    text = print_spec(spec_ir)
    network = cnnspec.loads(text)
    if len(network.input_shape) < 2:
        return
    analysis = network.input_sizes()
    if analysis.fixed:
        with pytest.raises(cnnspec.SpecError) as caught:
            network.to_onnx(dynamic="hw")
        assert {d.code for d in caught.value.diagnostics} == {"E220"}
        return
    rng = np.random.default_rng(index)
    sizes = []
    for _ in range(3):
        sizes.append(tuple(int(rng.choice([n for n in range(1, 3 * axis.declared + 10) if n in axis.constraint]))
                           for axis in analysis.axes))
    agree_at_sizes(text, sizes)


@pytest.mark.parametrize("kind", KINDS)
def test_random_specs_run_at_other_sizes_as_pytorch_does(kind):
    assert run_examples(kind, EXAMPLES, check_random) >= EXAMPLES


def test_random_structures_run_at_other_sizes_as_pytorch_does():
    assert run_examples(None, 3 * EXAMPLES, check_random) >= 3 * EXAMPLES


def test_a_small_unet_runs_at_every_size_it_takes():
    assert cnnspec.loads(SMALL_UNET).input_sizes().describe() == "H and W must be at least 18"
    assert agree_at_sizes(SMALL_UNET, [(60, 60), (18, 18), (19, 33), (61, 77), (40, 100)]) == 5


@pytest.mark.parametrize("name", ["squeezenet1_1", "resnet18"])
def test_zoo_classifiers_run_at_other_sizes(name):
    network = cnnspec.load(SPECS / f"{name}.cnn")
    model = network.to_onnx(dynamic="hw")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    sess = session(model)
    weights = random_weights(network, 0)
    x = np.random.default_rng(1).standard_normal((1, 3, 97, 131)).astype(np.float32)
    reference = cnnspec.load(SPECS / f"{name}.cnn", input=(3, 97, 131)).to_torch(memory_budget=None)
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    with torch.no_grad():
        expected = reference.eval()(torch.from_numpy(x)).numpy()
    actual = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert compare(actual, expected).relative_l2 < 1e-4


@pytest.mark.slow
def test_zoo_unet_runs_at_other_sizes():
    network = cnnspec.load(SPECS / "unet.cnn")
    weights = random_weights(network, 0)
    sess = session(network.to_onnx(weights=weights, dynamic="hw"))
    for size in ((188, 188), (189, 204)):
        x = np.random.default_rng(2).standard_normal((1, 1, *size)).astype(np.float32)
        reference = cnnspec.load(SPECS / "unet.cnn", input=(1, *size)).to_torch(memory_budget=None)
        reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
        with torch.no_grad():
            expected = reference.eval()(torch.from_numpy(x)).numpy()
        actual = sess.run(None, {"x": x})[0]
        assert actual.shape == expected.shape
        assert compare(actual, expected).relative_l2 < 1e-4


def test_export_states_the_sizes_in_the_summary_and_the_metadata(tmp_path):
    import onnx

    spec = tmp_path / "small_unet.cnn"
    spec.write_text(SMALL_UNET)
    out = tmp_path / "small_unet.onnx"
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(out), "--dynamic", "hw"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "input: H and W must be at least 18"
    model = onnx.load(str(out))
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["cnnspec.input_constraint"] == "H and W must be at least 18"
    assert json.loads(metadata["cnnspec.input_sizes"]) == {
        "H": {"multiple_of": 1, "plus": [0], "at_least": 18}, "W": {"multiple_of": 1, "plus": [0], "at_least": 18}}
    output_dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in output_dims] == ["N", 2, "H_out", "W_out"]
    # the default stays as it was: only the batch is symbolic, no size metadata
    plain = tmp_path / "plain.onnx"
    assert CliRunner().invoke(main, ["export", str(spec), "-o", str(plain)]).exit_code == 0
    assert "cnnspec.input_constraint" not in {p.key for p in onnx.load(str(plain)).metadata_props}


def test_a_fixed_size_is_refused_with_e220_at_the_layer(tmp_path):
    result = CliRunner().invoke(main, ["export", "zoo:lenet5", "-o", str(tmp_path / "l.onnx"), "--dynamic", "hw"])
    assert result.exit_code == 1
    assert "error[E220]: the input's H and W cannot vary: `linear` has weights for its declared input 400" \
        in result.output
    assert "valid only at H = 28, 29, 30 or 31" in result.output
    assert not (tmp_path / "l.onnx").exists()


def test_a_flat_input_has_no_sizes_to_vary():
    network = cnnspec.loads("input x: 16\nlinear 4\n")
    with pytest.raises(cnnspec.SpecError) as caught:
        network.to_onnx(dynamic="hw")
    assert caught.value.diagnostics[0].code == "E220"


@pytest.mark.parametrize("text, sizes", [
    # found by the random specs: after `channels_first` the channels are the input's length
    ("input x: 1x4\nconv 2 1\nchannels_first\nchannel_shuffle 2\nchunk 2 1\nchannels_last\n", [(4,), (6,), (14,)]),
    ("input x: 2x6\nchannels_first\nln affine=false\nlrn 2\nchannels_last\n", [(6,), (7,), (13,)]),
])
def test_channels_that_follow_the_input_size_are_read_at_run_time(text, sizes):
    assert agree_at_sizes(text, sizes) == len(sizes)
