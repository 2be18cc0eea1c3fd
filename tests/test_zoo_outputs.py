"""The zoo's networks with several outputs (ResNet-50's feature pyramid, GoogLeNet's and
Inception-v3's auxiliary classifiers) against their references: every output's shape and
every state_dict key with its shape as torchvision saves them (tests/data/models.json), and the
feature pyramid's computation against torchvision's top-down pass written by hand from its
state_dict; the full-size builds, exports and emitted sources behind `-m slow` as the zoo's are."""

import pytest
from conftest import SPECS, zoo_params

import cnnspec

NETWORKS = ("resnet50_fpn", "googlenet_aux", "inception_v3_aux")


@pytest.mark.parametrize("name", NETWORKS)
def test_outputs_and_figures_are_the_references(name, reference):
    network = cnnspec.load(SPECS / f"{name}.cnn")
    expected = reference[name]
    assert list(network.input_shape) == expected["input"]
    assert [(k, list(v)) for k, v in network.output_shapes.items()] == list(expected["outputs"].items())
    assert (network.params, network.buffers, network.macs) == (
        expected["params"], expected["buffers"], expected["macs_conv_linear"])


@pytest.mark.parametrize("name", zoo_params(NETWORKS))
def test_the_state_dict_is_the_references_key_for_key(name, reference):
    pytest.importorskip("torch")
    model = cnnspec.load(SPECS / f"{name}.cnn").to_torch(seed=0)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == reference[name]["state_dict"]


def torchvision_fpn(model, x):
    """torchvision's BackboneWithFPN forward, written from its source over the model's modules:
    the body's stages, then FeaturePyramidNetwork's top-down loop and LastLevelMaxPool."""
    import torch.nn.functional as F

    body, fpn = model.body, model.fpn
    h = body.get_submodule("3")(body.get_submodule("2")(body.bn1(body.conv1(x))))
    features = []
    for stage in (body.layer1, body.layer2, body.layer3, body.layer4):
        h = stage(h)
        features.append(h)
    # torchvision's ModuleLists of one-conv Sequentials, here containers of the same keys
    inner_blocks = [fpn.get_submodule(f"inner_blocks.{i}.0") for i in range(4)]
    layer_blocks = [fpn.get_submodule(f"layer_blocks.{i}.0") for i in range(4)]
    last_inner = inner_blocks[-1](features[-1])
    results = [layer_blocks[-1](last_inner)]
    for idx in range(len(features) - 2, -1, -1):
        inner_lateral = inner_blocks[idx](features[idx])
        inner_top_down = F.interpolate(last_inner, size=inner_lateral.shape[-2:], mode="nearest")
        last_inner = inner_lateral + inner_top_down
        results.insert(0, layer_blocks[idx](last_inner))
    results.append(F.max_pool2d(results[-1], 1, 2, 0))
    return dict(zip(["0", "1", "2", "3", "pool"], results))


@pytest.mark.parametrize("size", [(3, 100, 76), pytest.param((3, 96, 96), marks=pytest.mark.slow)])
def test_the_feature_pyramid_computes_what_torchvisions_forward_computes(size):
    """At small inputs (100x76: the coarser maps are not half the finer ones, so each is resized
    to the lateral's own size), the built model's outputs are torchvision's forward's over the
    same stages and convs."""
    torch = pytest.importorskip("torch")
    network = cnnspec.load(SPECS / "resnet50_fpn.cnn", input=size)
    model = network.to_torch(seed=0).eval()
    x = torch.randn(1, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        expected = torchvision_fpn(model, x)
    assert list(out) == list(expected)
    for name in out:
        torch.testing.assert_close(out[name], expected[name])
        assert tuple(out[name].shape[1:]) == network.output_shapes[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_full_size_export_verify_and_emitted_source(name, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx
    from click.testing import CliRunner
    from test_torch_source import emitted_runs_as_to_torch

    from cnnspec.cli import main

    path = tmp_path / f"{name}.onnx"
    assert CliRunner().invoke(main, ["export", str(SPECS / f"{name}.cnn"), "-o", str(path)]).exit_code == 0
    onnx.checker.check_model(str(path), full_check=True)
    network = cnnspec.load(SPECS / f"{name}.cnn")
    assert [o.name for o in onnx.load(str(path), load_external_data=False).graph.output] == list(network.output_shapes)
    result = CliRunner().invoke(main, ["verify", str(SPECS / f"{name}.cnn")])
    assert result.exit_code == 0 and "ok tolerance" in result.output, result.output
    emitted_runs_as_to_torch(network)
