"""Named values (`p4 = l4 -> conv 256 3x3`) and merges over them (`add(a, b)`, `scale(x, gate)`,
`concat crop(a, b)`): shapes, parameters and MACs against a hand-written PyTorch computation,
PyTorch against onnxruntime and the emitted source, receptive fields and activations against
the gradient oracle, the printer's round trip, and the diagnostics of values read where none is
bound, bound and never read, or bound twice."""

import pytest

import cnnspec
from cnnspec.diagnostics import SpecError
from cnnspec.frontend.formatter import format_text
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec

#: a feature pyramid in small: several values alive at once, a gate computed elsewhere and
#: multiplied in, an upsampled coarse map added to a finer one, the input read again
PYRAMID = """network pyramid
input x: 3x32x32
stem: conv 8 3x3 pad=1
relu
c1 = conv 8 3x3 pad=1
c2 = maxpool 2x2 stride=2
gate = c2 -> avgpool global, conv 8 1x1, sigmoid
g = scale(c2, gate)
up = g -> upsample scale=2
p1 = add(up, c1)
s = x -> skip: conv 4 1x1
concat(s, p1)
conv 6 3x3
"""

#: a crop: the larger map center-cropped to the smaller
CROPPED = """network cropped
input x: 2x20x20
a = conv 3 3x3
b = x -> conv 5 5x5
concat crop(a, b)
"""


def reference_pyramid(w, x):
    """PYRAMID written by hand with torch.nn.functional, from its state_dict."""
    import torch
    import torch.nn.functional as F

    h = F.relu(F.conv2d(x, w["stem.weight"], w["stem.bias"], padding=1))
    c1 = F.conv2d(h, w["2.weight"], w["2.bias"], padding=1)
    c2 = F.max_pool2d(c1, 2, 2)
    gate = torch.sigmoid(F.conv2d(F.adaptive_avg_pool2d(c2, 1), w["5.weight"], w["5.bias"]))
    up = F.interpolate(c2 * gate, scale_factor=2.0, mode="nearest")
    s = F.conv2d(x, w["skip.weight"], w["skip.bias"])
    return F.conv2d(torch.cat([s, up + c1], dim=1), w["9.weight"], w["9.bias"])


def test_named_values_compute_what_pytorch_written_by_hand_computes():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(PYRAMID)
    model = network.to_torch(seed=0).eval()
    weights = model.state_dict()
    assert {k: tuple(v.shape) for k, v in weights.items()} == {
        "stem.weight": (8, 3, 3, 3), "stem.bias": (8,), "2.weight": (8, 8, 3, 3), "2.bias": (8,),
        "5.weight": (8, 8, 1, 1), "5.bias": (8,), "skip.weight": (4, 3, 1, 1), "skip.bias": (4,),
        "9.weight": (6, 12, 3, 3), "9.bias": (6,)}
    assert network.params == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, reference_pyramid(weights, x))
    assert network.output_shape == tuple(out.shape[1:])
    # MACs: each conv's output elements times its weights per output, from the tensors PyTorch made
    shapes = {"stem": (8, 32, 32), "2": (8, 32, 32), "5": (8, 1, 1), "skip": (4, 32, 32), "9": (6, 30, 30)}
    macs = sum(weights[f"{k}.weight"][0].numel() * torch.Size(s).numel() for k, s in shapes.items())
    assert network.macs == macs


def test_crop_concat_over_values_crops_the_larger_map():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(CROPPED)
    assert network.output_shape == (8, 16, 16)
    model = network.to_torch(seed=0).eval()
    w = model.state_dict()
    x = torch.randn(1, 2, 20, 20)
    import torch.nn.functional as F
    a = F.conv2d(x, w["0.weight"], w["0.bias"])[:, :, 1:17, 1:17]
    b = F.conv2d(x, w["1.weight"], w["1.bias"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.cat([a, b], dim=1))


@pytest.mark.parametrize("text", [PYRAMID, CROPPED], ids=["pyramid", "cropped"])
def test_onnxruntime_and_the_emitted_source_agree_with_torch(text):
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime
    from test_torch_source import emitted_runs_as_to_torch

    spec = parse_text(text, "<spec>")
    for fold_bn in (False, True):
        check_against_onnxruntime(spec, None, fold_bn=fold_bn)
    emitted_runs_as_to_torch(cnnspec.loads(text))


@pytest.mark.parametrize("text", [PYRAMID, CROPPED], ids=["pyramid", "cropped"])
def test_receptive_fields_and_activations_equal_the_gradient_oracle(text):
    pytest.importorskip("torch")
    from oracle import measure_activations
    from test_receptive_field_oracle import assert_clean, oracle

    network = cnnspec.loads(text)
    assert_clean(oracle(network), measure_activations(network, network.name))


@pytest.mark.parametrize("text", [PYRAMID, CROPPED], ids=["pyramid", "cropped"])
def test_printing_round_trips(text):
    from test_fmt import meaning

    printed = print_spec(parse_text(text, "<spec>"))
    assert printed == text
    assert meaning(printed) == meaning(text)
    assert format_text(text) == text


def test_a_value_read_in_its_own_labelled_group_and_blocks_bind_their_own():
    torch = pytest.importorskip("torch")
    text = """input x: 4x8x8
block twice(c) {
  a = conv c 1x1
  b = relu
  add(a, b)
}
layer1: twice(4) * 2
head: {
  h = conv 4 3x3 pad=1
  add(h, h)
}
"""
    network = cnnspec.loads(text)
    model = network.to_torch(seed=0).eval()
    w = model.state_dict()
    x = torch.randn(1, 4, 8, 8)
    import torch.nn.functional as F
    y = x
    for i in range(2):
        a = F.conv2d(y, w[f"layer1.{i}.0.weight"], w[f"layer1.{i}.0.bias"])
        y = a + F.relu(a)
    h = F.conv2d(y, w["head.0.weight"], w["head.0.bias"], padding=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), h + h)
        torch.testing.assert_close(model.head(y), h + h)
    from test_torch_source import emitted_runs_as_to_torch
    emitted_runs_as_to_torch(network)


def codes_at(text: str) -> list[tuple[str, int, int]]:
    try:
        diagnostics = cnnspec.loads(text).diagnostics
    except SpecError as error:
        diagnostics = error.diagnostics
    return [(d.code, d.span.line, d.span.column) for d in diagnostics]


@pytest.mark.parametrize("text, expected", [
    ("input x: 3x8x8\nb = a -> relu\na = conv 4 1x1\nadd(a, b)\n", [("E151", 2, 5)]),
    ("input x: 3x8x8\nrelu\nadd(x, nothing)\n", [("E150", 3, 8)]),
    ("input x: 3x8x8\na = relu\nhead: { a -> conv 3 1x1 }\n", [("E150", 3, 9)]),
    ("input x: 3x8x8\nblock b() { y -> relu }\ny = relu\nb()\nadd(y, y)\n", [("E150", 2, 13)]),
    ("input x: 3x8x8\na = relu\nconv 3 1x1\n", [("W002", 2, 1)]),
    ("input x: 3x8x8\na = relu\na = conv 3 1x1\nadd(a, a)\n", [("W003", 3, 1), ("W002", 2, 1)]),
    ("input x: 3x8x8\nx = relu\nadd(x, x)\n", [("W003", 2, 1)]),
    ("input x: 3x8x8\na = maxpool 2x2\nadd(a, x)\n", [("E203", 3, 1)]),
    ("input x: 3x8x8\na = conv 4 1x1\nscale(a, x)\n", [("E204", 3, 1)]),
    ("input x: 3x8x8\na = maxpool 2x2\nconcat(a, x)\n", [("E202", 3, 1)]),
    ("input x: 3x8x8\nconcat tight(x, x)\n", [("E102", 2, 1)]),
    ("input x: 3x8x8\nadd(x)\n", [("E205", 2, 1)]),
])
def test_value_mistakes_are_located(text, expected):
    assert sorted(codes_at(text)) == sorted(expected)


def test_a_block_body_binding_is_reported_once_and_repeats_do_not_shadow():
    text = "input x: 3x8x8\nblock b() {\n  a = relu\n  conv 3 1x1\n}\nb() * 3\nc = relu\nc -> relu\n"
    assert codes_at(text) == [("W002", 3, 3)]
    looped = "input x: 3x8x8\n{ a = relu; add(a, a) } * 3\n"
    assert codes_at(looped) == []


def test_the_readme_example_checks_clean_with_the_shapes_it_states():
    import re
    import textwrap
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = [textwrap.dedent(b) for b in re.findall(r"```cnn\n(.*?)```", readme, re.S) if "scale(c2, gate)" in b]
    network = cnnspec.loads(example)
    assert network.diagnostics == [] and network.output_shape == (32, 32, 32)
    shapes = {row.kind: row.out_shape for row in network.rows if row.kind in ("scale", "add")}
    assert shapes == {"scale": (64, 16, 16), "add": (32, 32, 32)}


def test_the_summary_says_which_value_each_row_reads_and_binds():
    import json

    from cnnspec.summary import render_summary

    network = cnnspec.loads(PYRAMID)
    records = json.loads(render_summary(network, "json"))["layers"]
    flows = [(r["kind"], r.get("reads"), r.get("binds")) for r in records if "reads" in r or "binds" in r]
    assert flows == [("conv", None, "c1"), ("maxpool", None, "c2"), ("avgpool", ["c2"], None),
                     ("sigmoid", None, "gate"), ("scale", ["c2", "gate"], "g"), ("upsample", ["g"], "up"),
                     ("add", ["up", "c1"], "p1"), ("conv", ["x"], "s"), ("concat", ["s", "p1"], None)]
    table = render_summary(network)
    assert "from c2, gate; as g" in table.splitlines()[11]
    assert render_summary(network, "csv").splitlines()[0].endswith(",values")
    # a spec without values keeps its columns
    assert "values" not in render_summary(cnnspec.loads("input x: 3x8x8\nconv 4 3x3\n"))
