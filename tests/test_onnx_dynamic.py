"""Exports with symbolic spatial sizes (`--dynamic hw`): the model onnxruntime runs at sizes other
than the declared one gives what PyTorch gives on a model built at that size with the same
weights; the sizes it takes are stated in the summary and the metadata; a network whose size is
fixed is refused with E220 at the layer that fixes it."""

import json
import math
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


SMALL_FPN = """network small_fpn
input x: 3x64x64
c1 = conv 8 3x3 stride=2 pad=1
c2 = c1 -> conv 8 3x3 stride=2 pad=1
c3 = c2 -> conv 8 3x3 stride=2 pad=1
c4 = c3 -> conv 8 3x3 stride=2 pad=1
t3 = c4 -> upsample size=c3
m3 = add(c3, t3)
t2 = m3 -> upsample size=c2
m2 = add(c2, t2)
p5 = c4 -> maxpool 1x1 stride=2
output m2, m3, c4, p5
"""


def declared_sizes_hold(model, sizes: list[tuple[int, ...]]) -> set[str]:
    """The model's declared shapes at input sizes `sizes`, against what onnxruntime computes,
    every tensor made an output: a fixed size as declared, a size written as a formula of the
    input's (`ceil(H/4)`) equal to it evaluated there, one name one size; and onnx's checker and
    strict inference take the declarations. The symbolic names, returned."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    declared = {v.name: v for v in [*model.graph.value_info, *model.graph.output]}
    names = {d.dim_param for v in declared.values() for d in v.type.tensor_type.shape.dim if d.dim_param}
    assert not [name for name in names if name.startswith("unk__")]
    made = {out for node in model.graph.node for out in node.output}
    assert made == set(declared), "every tensor a node makes is declared"
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(v for v in probe.graph.value_info if v.name not in outputs)
    sess = session(probe)
    inputs = model.graph.input[0].type.tensor_type.shape.dim
    axis_names = [d.dim_param for d in inputs[2:]]
    for spatial in sizes:
        x = np.zeros((2, inputs[1].dim_value, *spatial), np.float32)
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
        at = dict(zip(axis_names, spatial))
        seen: dict[str, int] = {"N": 2}
        for name, value in declared.items():
            shape = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            assert len(shape) == got[name].ndim, (name, shape, got[name].shape)
            for dim, actual in zip(shape, got[name].shape):
                if isinstance(dim, int):
                    assert dim == actual, (name, shape, got[name].shape)
                    continue
                assert seen.setdefault(dim, actual) == actual, (name, dim, spatial)
                if dim != "N" and not dim.split("_")[-1].isdigit():
                    # a formula, not a name of its own (`H_1`)
                    assert eval(dim, {"floor": math.floor, "ceil": math.ceil, **at}) == actual, (name, dim, spatial)
    return names - {"N"}


def torch_at(text: str, dims, weights):
    """PyTorch's model of the spec checked at input `dims`, with `weights`: the reference."""
    model = cnnspec.loads(text, input=tuple(dims)).to_torch(memory_budget=None)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    return model.eval()


def agree_at_sizes(text: str, sizes: list[tuple[int, ...]], tolerance: float = 1e-4) -> int:
    """The model with symbolic sizes at each of `sizes`: every output as PyTorch's at that size,
    every declared shape as onnxruntime's."""
    network = cnnspec.loads(text)
    weights = random_weights(network, 0, statistics=True)
    model = network.to_onnx(weights=weights, dynamic="hw")
    declared_sizes_hold(model, sizes)
    sess = session(model)
    rng = np.random.default_rng(0)
    for spatial in sizes:
        dims = (network.input_shape[0], *spatial)
        x = rng.standard_normal((2, *dims)).astype(np.float32)
        with torch.no_grad():
            expected = torch_at(text, dims, weights)(torch.from_numpy(x))
        expected = [t.numpy() for t in (expected.values() if isinstance(expected, dict) else [expected])]
        actual = sess.run(None, {sess.get_inputs()[0].name: x})
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert a.shape == e.shape, (text, spatial)
            assert compare(a, e).relative_l2 < tolerance, (text, spatial)
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


def test_a_small_fpn_names_each_level_and_runs_at_every_size_as_pytorch_does():
    network = cnnspec.loads(SMALL_FPN)
    model = network.to_onnx(dynamic="hw")
    levels = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim][2:] for o in model.graph.output]
    # strides 4, 8, 16 and 32 (3x3, padding 1): each level rounds up, and each has its own name
    assert levels == [["ceil(H/4)", "ceil(W/4)"], ["ceil(H/8)", "ceil(W/8)"], ["ceil(H/16)", "ceil(W/16)"],
                      ["ceil(H/32)", "ceil(W/32)"]]
    names = declared_sizes_hold(model, [(64, 64), (37, 70), (5, 9)])
    assert {"ceil(H/2)", "ceil(W/2)"} <= names
    assert agree_at_sizes(SMALL_FPN, [(64, 64), (37, 70), (5, 9)]) == 3


def test_equal_sizes_share_a_name_and_different_ones_do_not():
    # a stride-2 conv rounds up, a 2x2 pool rounds down: the concat of the two takes even sizes
    # only, where both are H/2, one name; a 2x2 conv without padding after it is one smaller
    text = ("input x: 2x16x16\nconcat {\n  conv 2 3x3 stride=2 pad=1\n  { conv 2 3x3 pad=same; maxpool 2x2 }\n}\n"
            "a: conv 2 2x2\nb: conv 2 3x3 stride=2 pad=1\n")
    network = cnnspec.loads(text)
    assert network.input_sizes().describe() == "H and W must be multiples of 2, at least 4"
    model = network.to_onnx(dynamic="hw")
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim][2:]
              for v in [*model.graph.value_info, *model.graph.output]}
    assert shapes["0"] == shapes["2"] == shapes["merge:concat"] == ["H/2", "W/2"]
    assert shapes["1"] == ["H", "W"]
    assert shapes["a"] == ["(H-2)/2", "(W-2)/2"]
    assert shapes["output"] == ["floor(H/4)", "floor(W/4)"]
    declared_sizes_hold(model, [(16, 16), (18, 22), (4, 6)])


def zoo_outputs_agree(name: str, model, weights, sizes) -> None:
    """Every output of the zoo network's model with symbolic sizes, at each of `sizes`, as PyTorch's
    model of the spec checked at that size gives it with the same weights."""
    sess = session(model)
    channels = cnnspec.load(SPECS / f"{name}.cnn").input_shape[0]
    for size in sizes:
        x = np.random.default_rng(2).standard_normal((1, channels, *size)).astype(np.float32)
        reference = cnnspec.load(SPECS / f"{name}.cnn", input=(channels, *size)).to_torch(memory_budget=None)
        reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
        with torch.no_grad():
            expected = reference.eval()(torch.from_numpy(x))
        expected = [t.numpy() for t in (expected.values() if isinstance(expected, dict) else [expected])]
        actual = sess.run(None, {sess.get_inputs()[0].name: x})
        assert [a.shape for a in actual] == [e.shape for e in expected]
        assert all(compare(a, e).relative_l2 < 1e-4 for a, e in zip(actual, expected))


@pytest.mark.slow
def test_zoo_unet_runs_at_other_sizes():
    network = cnnspec.load(SPECS / "unet.cnn")
    weights = random_weights(network, 0)
    model = network.to_onnx(weights=weights, dynamic="hw")
    output = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    # 572 -> 388, the paper's sizes
    assert output == ["N", 2, "16*floor((H+4)/16)-188", "16*floor((W+4)/16)-188"]
    declared_sizes_hold(model, [(188, 188), (189, 204), (572, 572)])
    zoo_outputs_agree("unet", model, weights, [(188, 188), (189, 204)])


@pytest.mark.slow
def test_zoo_fpn_names_its_five_levels_and_runs_at_other_sizes():
    network = cnnspec.load(SPECS / "resnet50_fpn.cnn")
    weights = random_weights(network, 0)
    model = network.to_onnx(weights=weights, dynamic="hw")
    levels = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert levels == [["N", 256, f"ceil(H/{s})", f"ceil(W/{s})"] for s in (4, 8, 16, 32, 64)]
    declared_sizes_hold(model, [(224, 224), (97, 131), (33, 64)])
    zoo_outputs_agree("resnet50_fpn", model, weights, [(97, 131), (160, 96)])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*.cnn")))
def test_zoo_exports_with_symbolic_sizes_name_every_size(name):
    try:
        model = cnnspec.load(SPECS / f"{name}.cnn").to_onnx(dynamic="hw")
    except cnnspec.SpecError as error:
        assert {d.code for d in error.diagnostics} == {"E220"}
        pytest.skip("its input sizes cannot vary")
    names = {d.dim_param for v in [*model.graph.value_info, *model.graph.output]
             for d in v.type.tensor_type.shape.dim if d.dim_param}
    assert not [n for n in names if n.startswith("unk__")]
    made = {out for node in model.graph.node for out in node.output}
    assert made == {v.name for v in [*model.graph.value_info, *model.graph.output]}


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
    # 60 -> 56 (two 3x3) -> 28 -> 24 -> 48 (the deconv), the concat cropped to it -> 44
    assert [d.dim_param or d.dim_value for d in output_dims] == ["N", 2, "2*floor(H/2)-16", "2*floor(W/2)-16"]
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


def test_several_inputs_are_not_analysed_and_say_so():
    """The Siamese network's two inputs would vary together: `input_sizes()` says it does not
    analyse them, and an export with symbolic sizes refuses with E220, not a traceback."""
    from cnnspec.analysis.sizes import Unsupported

    network = cnnspec.load(SPECS / "siamese.cnn")
    with pytest.raises(Unsupported, match="several inputs"):
        network.input_sizes()
    with pytest.raises(cnnspec.SpecError) as caught:
        network.to_onnx(dynamic="hw")
    assert [(d.code, d.message) for d in caught.value.diagnostics] == [
        ("E220", "the input's sizes cannot be analysed: the network has several inputs")]


@pytest.mark.parametrize("text, sizes", [
    # found by the random specs: after `channels_first` the channels are the input's length
    ("input x: 1x4\nconv 2 1\nchannels_first\nchannel_shuffle 2\nchunk 2 1\nchannels_last\n", [(4,), (6,), (14,)]),
    ("input x: 2x6\nchannels_first\nln affine=false\nlrn 2\nchannels_last\n", [(6,), (7,), (13,)]),
])
def test_channels_that_follow_the_input_size_are_read_at_run_time(text, sizes):
    assert agree_at_sizes(text, sizes) == len(sizes)
