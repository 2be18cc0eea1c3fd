"""Several inputs (`input a: ...` then `input b: ...`): the first flows into the first statement and
every input is a value under its name. `to_torch()` and the emitted source take them positionally
in declaration order, the ONNX model has one graph input per name with onnxruntime's values equal
to PyTorch's, `run` and `verify` feed each, `check` and the summary show each, `--input NAME=...`
overrides one, and the mistakes are located."""

import json

import pytest
from click.testing import CliRunner

import cnnspec
from cnnspec.cli import main
from cnnspec.diagnostics import SpecError

TWO_INPUTS = """network pair
input a: 3x16x16
input b: 2x8x8
fa = stem: conv 4 3x3 stride=2 pad=1, relu
fb = b -> side: conv 4 1x1
s = add(fa, fb)
g = b -> avgpool global, flatten, linear 4
output s, g
"""


def test_to_torch_takes_the_inputs_in_order_as_pytorch_computes_them():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    network = cnnspec.loads(TWO_INPUTS)
    assert network.input_shapes == {"a": (3, 16, 16), "b": (2, 8, 8)}
    assert network.input_shape == (3, 16, 16) and network.graph.input_name == "a"
    model = network.to_torch(seed=0).eval()
    w = model.state_dict()
    assert sorted(w) == ["4.bias", "4.weight", "side.bias", "side.weight", "stem.0.bias", "stem.0.weight"]
    assert network.params == sum(p.numel() for p in model.parameters())
    a, b = torch.randn(2, 3, 16, 16), torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        out = model(a, b)
    fa = F.relu(F.conv2d(a, w["stem.0.weight"], w["stem.0.bias"], stride=2, padding=1))
    torch.testing.assert_close(out["s"], fa + F.conv2d(b, w["side.weight"], w["side.bias"]))
    torch.testing.assert_close(out["g"], F.linear(b.mean((2, 3)), w["4.weight"], w["4.bias"]))
    with pytest.raises(TypeError, match=r"takes 2 inputs \(a, b\), given 1"):
        model(a)


def test_onnx_has_one_input_per_name_and_agrees_with_torch_and_the_emitted_source():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx
    from test_torch_source import emitted_runs_as_to_torch

    from cnnspec.backends.runtime import session
    from cnnspec.backends.weights import random_weights

    network = cnnspec.loads(TWO_INPUTS)
    weights = random_weights(network, seed=0, statistics=True)
    model = network.to_onnx(weights=weights)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["a", "b"]
    shapes = [[d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert shapes == [["N", 3, 16, 16], ["N", 2, 8, 8]]
    reference = network.to_torch().eval()
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 16, 16)).astype(np.float32), rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(a), torch.from_numpy(b))
    actual = session(model, threads=1).run(None, {"a": a, "b": b})
    for name, value in zip(["s", "g"], actual):
        np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-5, atol=1e-5)
    emitted_runs_as_to_torch(network)
    assert "def forward(self, a, b):" in network.to_torch_source()


def test_a_single_input_network_is_called_and_emitted_as_before():
    network = cnnspec.loads("input x: 3x8x8\nconv 4 3x3\n")
    assert network.input_shapes == {"x": (3, 8, 8)}
    assert "def forward(self, x):" in network.to_torch_source()
    assert network.summary().splitlines()[0] == "<string>: input 3x8x8  ->  output 4x6x6"


def test_inputs_of_different_ranks_and_a_flat_one():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads("input img: 3x8x8\ninput meta: 5\nf = avgpool global, flatten\n"
                            "m = meta -> linear 3\nconcat(f, m)\n")
    assert network.output_shape == (6,)
    model = network.to_torch(seed=0).eval()
    img, meta = torch.randn(2, 3, 8, 8), torch.randn(2, 5)
    w = model.state_dict()
    with torch.no_grad():
        torch.testing.assert_close(model(img, meta), torch.cat([img.mean((2, 3)), meta @ w["2.weight"].T + w["2.bias"]], 1))


def test_run_verify_check_and_summary_feed_and_show_every_input(tmp_path):
    pytest.importorskip("onnxruntime")
    import numpy as np

    spec = tmp_path / "pair.cnn"
    spec.write_text(TWO_INPUTS)
    ran = CliRunner().invoke(main, ["run", str(spec), "--random", "--batch", "2"])
    assert ran.exit_code == 0, ran.output
    lines = ran.output.splitlines()
    assert lines[0] == "s: output shape 2x4x8x8" and lines[1] == "g: output shape 2x4", ran.output
    np.savez(tmp_path / "in.npz", a=np.ones((3, 16, 16), np.float32), b=np.ones((1, 2, 8, 8), np.float32))
    fed = CliRunner().invoke(main, ["run", str(spec), "--input", str(tmp_path / "in.npz")])
    assert fed.exit_code == 0 and fed.output.startswith("s: output shape 1x4x8x8"), fed.output
    np.save(tmp_path / "one.npy", np.ones((3, 16, 16), np.float32))
    one = CliRunner().invoke(main, ["run", str(spec), "--input", str(tmp_path / "one.npy")])
    assert one.exit_code != 0 and "the model takes 2 inputs (a, b): give an .npz holding each by name" in one.output
    image = tmp_path / "cat.png"
    image.write_bytes(b"not read")
    refused = CliRunner().invoke(main, ["run", str(spec), "--image", str(image)])
    assert refused.exit_code != 0 and "--image feeds a model of one image input" in refused.output
    assert "Traceback" not in refused.output
    verified = CliRunner().invoke(main, ["verify", str(spec)])
    assert verified.exit_code == 0 and "pair: outputs s 4x8x8, g 4" in verified.output, verified.output
    checked = CliRunner().invoke(main, ["check", str(spec)])
    assert "ok (" in checked.output and "inputs a 3x16x16, b 2x8x8, outputs s 4x8x8, g 4)" in checked.output
    summary = CliRunner().invoke(main, ["summary", str(spec)])
    assert summary.output.startswith("pair: inputs a 3x16x16, b 2x8x8  ->  outputs s 4x8x8")
    assert "inputs:      receptive fields are measured on the inputs as one grid" in summary.output
    document = json.loads(CliRunner().invoke(main, ["summary", str(spec), "--format", "json"]).output)
    assert document["input"] == [3, 16, 16] and document["inputs"] == {"a": [3, 16, 16], "b": [2, 8, 8]}
    totals = json.loads(CliRunner().invoke(main, ["check", str(spec), "--format", "json"]).output)
    assert totals[0]["totals"]["inputs"] == {"a": [3, 16, 16], "b": [2, 8, 8]}


def test_input_sizes_are_overridden_by_name_and_a_bare_size_is_the_first(tmp_path):
    spec = tmp_path / "pair.cnn"
    spec.write_text(TWO_INPUTS)
    network = cnnspec.load(spec, input={"b": (2, 4, 4), None: (3, 8, 8)})
    assert network.input_shapes == {"a": (3, 8, 8), "b": (2, 4, 4)}
    with pytest.raises(SpecError) as bare:  # the first input alone: `a` at 3x8x8 no longer meets `b` at 2x8x8
        cnnspec.load(spec, input=(3, 8, 8))
    assert [(d.code, d.span.line) for d in bare.value.diagnostics] == [("E203", 6)]
    summary = CliRunner().invoke(main, ["summary", str(spec), "--input", "b=2x4x4", "--input", "3x8x8"])
    assert summary.output.startswith("pair: inputs a 3x8x8, b 2x4x4  ->  outputs s 4x4x4"), summary.output
    unknown = CliRunner().invoke(main, ["check", str(spec), "--input", "c=2x4x4"])
    assert unknown.exit_code == 1 and "error[E143]" in unknown.output and "the spec's inputs: `a`, `b`" in unknown.output
    twice = CliRunner().invoke(main, ["check", str(spec), "--input", "b=2x4x4", "--input", "b=2x8x8"])
    assert twice.exit_code == 2 and "input 'b' is given twice" in twice.output
    with pytest.raises(TypeError, match="must map input names"):
        cnnspec.load(spec, input={1: (3, 8, 8)})


def codes(text: str, **options) -> list[tuple[str, int]]:
    try:
        diagnostics = cnnspec.loads(text, **options).diagnostics
    except SpecError as error:
        diagnostics = error.diagnostics
    return sorted((d.code, d.span.line) for d in diagnostics)


@pytest.mark.parametrize("text, options, expected", [
    ("input a: 3x8x8\ninput a: 3x8x8\nrelu\n", {}, [("E142", 2)]),
    ("input a: 3x8x8\ninput b: 3x8x8\nrelu\n", {}, [("W004", 2)]),
    ("input a: 3x8x8\ninput b: 3x8x8\nrelu  # cnnspec: ignore[W004] x\n", {}, [("W004", 2)]),
    ("input a: 3x8x8\ninput b: 3x8x8\nb -> relu\n", {}, []),
    ("input a: 3x8x8\ninput b: 3x8x8\nadd(a, b)\n", {"input": {"z": (3, 4, 4)}}, [("E143", 1)]),
    ("input a: 3x8x8\ninput b: 3x4x4\nadd(a, b)\n", {}, [("E203", 3)]),
    ("input a: 3x8x8\ninput b: 3x4x4\nadd(a, b)\n", {"input": {"b": (3, 8, 8)}}, []),
    ("input a: 3x8x8\ninput b: 3x8x8\nb = relu\nadd(a, b)\n", {}, [("W003", 3), ("W004", 2)]),
])
def test_input_mistakes_are_located(text, options, expected):
    assert codes(text, **options) == expected


def test_receptive_fields_are_measured_on_the_inputs_as_one_grid_as_the_gradient_oracle_finds():
    pytest.importorskip("torch")
    from oracle import measure_activations
    from test_receptive_field_oracle import assert_clean, oracle

    network = cnnspec.loads("input a: 2x24x24\ninput b: 2x24x24\nfa = conv 2 3x3 pad=1\n"
                            "fb = b -> conv 2 5x5 pad=2, maxpool 3x3 stride=1 pad=1\nadd(fa, fb)\nconv 2 3x3 pad=1\n")
    assert [r.rf for r in network.rows] and network.receptive_field == "9"
    assert_clean(oracle(network), measure_activations(network, network.name))


def test_printing_round_trips_and_the_readme_example_checks():
    import re
    import textwrap
    from pathlib import Path

    from cnnspec.frontend.formatter import format_text

    assert format_text(TWO_INPUTS) == TWO_INPUTS
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = [textwrap.dedent(b) for b in re.findall(r"```cnn\n(.*?)```", readme, re.S) if "input meta" in b]
    network = cnnspec.loads(example)
    assert network.diagnostics == []
    assert network.input_shapes == {"image": (3, 32, 32), "meta": (8,)}
