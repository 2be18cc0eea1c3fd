"""The zoo specs against the reference figures read off torchvision and plain torch."""

import json

import pytest
from click.testing import CliRunner
from conftest import KEYED_SOURCES, SPECS, zoo_cases

from cnnspec.cli import main

CASES = dict(zoo_cases())


@pytest.mark.parametrize("spec,key", sorted(CASES.items()))
def test_summary_json_matches_reference(spec, key, reference):
    result = CliRunner().invoke(main, ["summary", str(SPECS / f"{spec}.cnn"), "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    expected = reference[key]
    assert summary["input"] == expected["input"]
    if "outputs" in expected:
        # several outputs: each one's shape, by name, in the reference's order
        assert [(name, out["shape"]) for name, out in summary["outputs"].items()] == list(expected["outputs"].items())
    else:
        assert summary["output"] == expected["output"]
    assert summary["params"] == expected["params"]
    assert summary["macs"] == expected["macs_conv_linear"]
    if "buffers" in expected:
        assert summary["buffers"] == expected["buffers"]


@pytest.mark.parametrize("spec,key", zoo_cases(KEYED_SOURCES))
def test_parameterised_layers_are_named_as_the_reference_state_dict(spec, key, reference):
    """Every layer with parameters has the path its weights carry in the reference state_dict."""
    import cnnspec

    network = cnnspec.load(SPECS / f"{spec}.cnn")
    keys = reference[key]["state_dict"]
    # a bare parameter (ConvNeXt's layer_scale) is saved under the layer's own path
    bare = {r.path for r in network.rows if r.kind == "layerscale"}
    prefixes = {k.rsplit(".", 1)[0] for k in keys if k not in bare}
    assert {r.path for r in network.rows if r.params and r.path not in bare} == prefixes
    for row in network.rows:
        if row.path in bare:
            assert _numel(keys[row.path]) == row.params
        elif row.params:
            shapes = [v for k, v in keys.items() if k.rsplit(".", 1)[0] == row.path]
            assert sum(_numel(s) for s in shapes) - _buffer_numel(keys, row.path) == row.params


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _buffer_numel(keys, path):
    return sum(_numel(v) for k, v in keys.items()
               if k.rsplit(".", 1)[0] == path and k.rsplit(".", 1)[1] in ("running_mean", "running_var",
                                                                            "num_batches_tracked"))


def test_published_receptive_fields():
    """AlexNet 195 at its last max pool; VGG-16 212 at pool5."""
    import cnnspec
    from cnnspec.analysis.stats import describe_field

    alexnet = cnnspec.load(SPECS / "alexnet.cnn")
    assert describe_field(next(r for r in alexnet.rows if r.path == "features.12").rf) == "195"
    vgg = cnnspec.load(SPECS / "vgg16.cnn")
    assert describe_field(next(r for r in vgg.rows if r.path == "features.30").rf) == "212"
