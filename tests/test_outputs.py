"""Several named outputs (`output p1, p2`): `to_torch()` returns a dict in the declared order,
the emitted source the same, the ONNX model one graph output per name with onnxruntime's values
equal to PyTorch's, `run` and `verify` handle each, the summary and `check` show every output's
shape, and `expect NAME SHAPE` checks a named value."""

import json

import pytest
from click.testing import CliRunner

import cnnspec
from cnnspec.cli import main
from cnnspec.diagnostics import SpecError

TWO_HEADS = """network two_heads
input x: 3x32x32
c1 = stem: conv 8 3x3 pad=1, relu
c2 = maxpool 2x2
p2 = c2 -> conv 4 1x1
p1 = add(c1, c1)
expect p2 4x16x16
output p1, p2, x
"""


def test_to_torch_returns_the_outputs_by_name_in_order_as_pytorch_computes_them():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    network = cnnspec.loads(TWO_HEADS)
    assert network.output_shapes == {"p1": (8, 32, 32), "p2": (4, 16, 16), "x": (3, 32, 32)}
    model = network.to_torch(seed=0).eval()
    w = model.state_dict()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    assert list(out) == ["p1", "p2", "x"]
    c1 = F.relu(F.conv2d(x, w["stem.0.weight"], w["stem.0.bias"], padding=1))
    torch.testing.assert_close(out["p1"], c1 + c1)
    torch.testing.assert_close(out["p2"], F.conv2d(F.max_pool2d(c1, 2), w["2.weight"], w["2.bias"]))
    torch.testing.assert_close(out["x"], x)


def test_onnx_has_one_output_per_name_and_agrees_with_torch_and_the_emitted_source():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnx
    from test_torch_source import emitted_runs_as_to_torch

    from cnnspec.backends.runtime import session
    from cnnspec.backends.weights import random_weights

    network = cnnspec.loads(TWO_HEADS)
    weights = random_weights(network, seed=0, statistics=True)
    model = network.to_onnx(weights=weights)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["p1", "p2", "x"]
    shapes = [[d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert shapes == [["N", 8, 32, 32], ["N", 4, 16, 16], ["N", 3, 32, 32]]
    reference = network.to_torch().eval()
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x))
    actual = session(model, threads=1).run(None, {model.graph.input[0].name: x})
    for name, value in zip(["p1", "p2", "x"], actual):
        np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-5, atol=1e-5)
    emitted_runs_as_to_torch(network)
    assert "return {'p1': p1, 'p2': p2, 'x': x_}" in network.to_torch_source()


def test_run_verify_check_and_summary_show_every_output(tmp_path):
    pytest.importorskip("onnxruntime")
    import numpy as np

    spec = tmp_path / "two_heads.cnn"
    spec.write_text(TWO_HEADS)
    ran = CliRunner().invoke(main, ["run", str(spec), "--random", "--batch", "2", "-o", str(tmp_path / "out.npz")])
    assert ran.exit_code == 0, ran.output
    assert ran.output.splitlines() == ["p1: output shape 2x8x32x32", "p2: output shape 2x4x16x16",
                                       "x: output shape 2x3x32x32"]
    saved = np.load(tmp_path / "out.npz")
    assert {k: saved[k].shape for k in saved.files} == {"p1": (2, 8, 32, 32), "p2": (2, 4, 16, 16), "x": (2, 3, 32, 32)}
    verified = CliRunner().invoke(main, ["verify", str(spec)])
    assert verified.exit_code == 0 and "outputs p1 8x32x32, p2 4x16x16, x 3x32x32" in verified.output
    checked = CliRunner().invoke(main, ["check", str(spec)])
    assert "outputs p1 8x32x32, p2 4x16x16, x 3x32x32)" in checked.output
    summary = CliRunner().invoke(main, ["summary", str(spec)])
    assert "outputs p1 8x32x32 (RF 3), p2 4x16x16 (RF 4), x 3x32x32 (RF 1)" in summary.output.splitlines()[0]
    document = json.loads(CliRunner().invoke(main, ["summary", str(spec), "--format", "json"]).output)
    assert {name: {key: entry[key] for key in ("shape", "receptive_field")}
            for name, entry in document["outputs"].items()} == {"p1": {"shape": [8, 32, 32], "receptive_field": "3"},
                                   "p2": {"shape": [4, 16, 16], "receptive_field": "4"},
                                   "x": {"shape": [3, 32, 32], "receptive_field": "1"}}


def codes(text: str) -> list[tuple[str, int]]:
    try:
        diagnostics = cnnspec.loads(text).diagnostics
    except SpecError as error:
        diagnostics = error.diagnostics
    return [(d.code, d.span.line) for d in diagnostics]


@pytest.mark.parametrize("text, expected", [
    ("input x: 3x8x8\na = relu\nexpect a 3x4x4\noutput a\n", [("E401", 3)]),
    ("input x: 3x8x8\na = relu\noutput a\noutput a\n", [("E141", 4)]),
    ("input x: 3x8x8\na = relu\noutput a, a\n", [("E141", 3)]),
    ("input x: 3x8x8\noutput b\n", [("E150", 2)]),
    ("input x: 3x8x8\nhead: { a = relu; output a }\n", [("E126", 2), ("W002", 2)]),
])
def test_output_mistakes_are_located(text, expected):
    assert sorted(codes(text)) == sorted(expected)


def test_printing_round_trips_and_the_readme_example_checks():
    import re
    import textwrap
    from pathlib import Path

    from cnnspec.frontend.formatter import format_text

    assert format_text(TWO_HEADS) == TWO_HEADS
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = [textwrap.dedent(b) for b in re.findall(r"```cnn\n(.*?)```", readme, re.S) if "output score" in b]
    network = cnnspec.loads(example)
    assert network.diagnostics == []
    assert network.output_shapes == {"score": (10,), "c1": (16, 64, 64), "c2": (32, 32, 32)}


# ---------------------------------------------------------------- what each output needs

BRANCHY = """network branchy
input x: 3x24x24
c1 = stem: { conv 8 3x3 pad=1; bn; relu }
gate = c1 -> avgpool global, conv 8 1x1, sigmoid
g = scale(c1, gate)
down = g -> conv 16 3x3 stride=2 pad=1, relu
side = c1 -> maxpool 2x2, conv 16 1x1
both = concat(down, side)
head = both -> avgpool global, flatten, linear 5
aux = side -> conv 4 1x1
unused_by_outputs = c1 -> conv 2 1x1
output head, aux, c1
"""


def measured_needs(network, name: str) -> dict:
    """What PyTorch's autograd says output `name` is computed from: the parameters that receive a
    gradient from it, and the layers and merges whose output tensors its graph reaches (their
    MACs counted by hooks from the modules' own attributes, their elements by the tensors)."""
    import torch
    from oracle import merges_recorded
    from test_differential_torch import hook_macs

    from cnnspec.layers import REGISTRY

    model = network.to_torch(seed=0).eval()
    # a module applied twice (`use`) has a row per application, in the order they run
    by_path: dict[str, list[int]] = {}
    for row in network.rows:
        if row.kind in REGISTRY:
            by_path.setdefault(row.path, []).append(row.id)
    seen, macs, calls = {}, {}, {}
    for path, module in model.named_modules():
        if path in by_path:
            def hook(module, inputs, output, path=path):
                calls[path] = calls.get(path, -1) + 1
                row = by_path[path][calls[path] % len(by_path[path])]
                seen[row], macs[row] = output, hook_macs(module, inputs, output)
            module.register_forward_hook(hook)
    xs = [torch.rand(2, *shape, requires_grad=True) for shape in (network.input_shapes or {"x": network.input_shape}).values()]
    with merges_recorded(seen):
        out = model(*xs)[name]
    (out * torch.randn_like(out)).sum().backward()
    reached, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in reached:
            reached.add(node)
            stack.extend(next_node for next_node, _ in node.next_functions)
    rows = [row for row in network.rows if seen[row.id].grad_fn in reached]
    return {"params": sum(p.numel() for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0),
            "buffers": sum(b.numel() for path, b in model.named_buffers() if not path.endswith("num_batches_tracked")
                           and path.rsplit(".", 1)[0] in {r.path for r in rows}),
            "macs": sum(macs.get(row.id, 0) for row in rows),
            "activation_bytes": sum(4 * seen[row.id][0].numel() for row in rows),
            "layers": sum(row.kind in REGISTRY for row in rows)}


SHARED = """network shared
input a: 3x16x16
input b: 3x16x16
fa = encoder: { conv 8 3x3 pad=1; bn; relu }
fb = b -> use encoder
tail = fb -> avgpool global, flatten, linear 4
joined = add(fa, fb)
output tail, joined
"""


@pytest.mark.parametrize("text", [TWO_HEADS, BRANCHY, SHARED], ids=["two_heads", "branchy", "shared"])
def test_each_outputs_figures_are_what_autograd_says_it_is_computed_from(text):
    pytest.importorskip("torch")
    from cnnspec.analysis.needs import output_needs

    network = cnnspec.loads(text)
    needs = output_needs(network.graph, network.rows)
    assert list(needs) == list(network.output_shapes)
    for name, need in needs.items():
        assert vars(need) == measured_needs(network, name), name


def test_the_summary_shows_what_each_output_needs_in_every_format():
    network = cnnspec.loads(BRANCHY)
    from cnnspec.analysis.needs import output_needs

    needs = output_needs(network.graph, network.rows)
    # the head does not need `aux`'s conv nor the unread branch; `aux` needs neither the gate nor the head
    assert needs["head"].params < network.params and needs["aux"].macs < needs["head"].macs
    text = network.summary()
    table = text.split("what each output is computed from:\n", 1)[1].splitlines()
    assert table[0].split() == ["output", "shape", "RF", "params", "MACs", "act", "(fp32)", "layers"]
    for line, (name, need) in zip(table[1:], needs.items()):
        words = line.split()
        assert words[0] == name and words[3] == f"{need.params:,}" and words[4] == f"{need.macs:,}"
        assert words[-1] == str(need.layers)
    document = json.loads(network.summary(format="json"))
    assert {name: {k: v for k, v in entry.items() if k in vars(needs[name])}
            for name, entry in document["outputs"].items()} == {name: vars(need) for name, need in needs.items()}
    markdown = network.summary(format="markdown")
    assert f"| aux | 4x12x12 | {network.graph.outputs[1][3]} | {needs['aux'].params:,} |" in markdown


def test_verify_compares_a_single_declared_output(tmp_path):
    """One named output: PyTorch returns it in a dict, onnxruntime as the one graph output; both
    are compared alike (the dict's side was joined and the other not: a broadcasting error)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    spec = tmp_path / "seg.cnn"
    spec.write_text("input x: 3x32x32\nc = conv 8 3x3 stride=2 pad=1, relu\nlogits = c -> conv 5 1x1\n"
                    "up = logits -> upsample size=x bilinear\noutput up\n")
    result = CliRunner().invoke(main, ["verify", str(spec)])
    assert result.exit_code == 0, result.output
    assert "outputs up 5x32x32" in result.output and "ok tolerance" in result.output

