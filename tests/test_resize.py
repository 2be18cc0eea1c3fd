"""Resizing to another tensor's spatial size (`upsample size=c1`, `size=x` for the input's): the
shapes the checker infers against a PyTorch computation written by hand with `F.interpolate(x,
size=c1.shape[2:])`, PyTorch against onnxruntime and the emitted source, the export with symbolic
sizes against PyTorch at two input sizes, the sizes it is valid for against checks at each size,
receptive fields against the gradient oracle (the value gives its size, no field), the printer's
round trip, the summary's reads, and the diagnostics of a value that is not there or not a map
of the input's rank."""

import pytest

import cnnspec
from cnnspec.frontend.formatter import format_text
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec

#: a top-down path resized to a lateral's size (nearest; 9 is not twice 5), bilinear to the input's
#: size both ways of aligning corners
PYRAMID = """network resized
input x: 3x37x37
c1 = conv 8 3x3 stride=2 pad=1, relu
c2 = conv 16 3x3 stride=2 pad=1, relu
lat = c2 -> lateral: conv 8 1x1
top = lat -> upsample size=c1
p1 = add(top, c1)
full = p1 -> upsample bilinear size=x
corners = p1 -> upsample bilinear size=x align_corners=true
concat(full, corners)
"""

#: 1D and 3D maps: nearest to a value's size
RANKS = """network ranks
input x: 2x6x10x9
a = conv 4 3x3x3 stride=2
b = conv 4 3x3x3 stride=2 pad=1
b -> upsample size=a
"""

LINE = """network line
input x: 3x50
a = conv 4 5 stride=3
b = conv 4 3 stride=2
b -> upsample size=a
"""


def reference(w, x):
    """PYRAMID written by hand with torch.nn.functional, from its state_dict."""
    import torch
    import torch.nn.functional as F

    c1 = F.relu(F.conv2d(x, w["0.weight"], w["0.bias"], stride=2, padding=1))
    c2 = F.relu(F.conv2d(c1, w["2.weight"], w["2.bias"], stride=2, padding=1))
    top = F.interpolate(F.conv2d(c2, w["lateral.weight"], w["lateral.bias"]), size=c1.shape[-2:], mode="nearest")
    p1 = top + c1
    full = F.interpolate(p1, size=x.shape[-2:], mode="bilinear", align_corners=False)
    corners = F.interpolate(p1, size=x.shape[-2:], mode="bilinear", align_corners=True)
    return torch.cat([full, corners], dim=1)


def test_a_resize_to_a_value_computes_what_pytorch_written_by_hand_computes():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(PYRAMID)
    assert network.diagnostics == []
    shapes = {row.path: row.out_shape for row in network.rows if row.kind == "upsample"}
    assert shapes == {"5": (8, 19, 19), "6": (8, 37, 37), "7": (8, 37, 37)}
    model = network.to_torch(seed=0).eval()
    weights = model.state_dict()
    x = torch.randn(2, 3, 37, 37, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, reference(weights, x))
        # the size is read from the value at run time: another input gives other sizes
        y = torch.randn(1, 3, 45, 40)
        assert model(y).shape == reference(weights, y).shape == (1, 16, 45, 40)
    assert network.output_shape == tuple(out.shape[1:])
    assert network.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("text", [PYRAMID, RANKS, LINE], ids=["pyramid", "3d", "1d"])
def test_onnxruntime_and_the_emitted_source_agree_with_torch(text):
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime
    from test_torch_source import emitted_runs_as_to_torch

    spec = parse_text(text, "<spec>")
    check_against_onnxruntime(spec, None, fold_bn=False)
    emitted_runs_as_to_torch(cnnspec.loads(text))


def test_the_emitted_source_reads_the_size_from_the_value():
    source = cnnspec.loads(PYRAMID).to_torch_source()
    assert "x = F.interpolate(lat, size=c1.shape[2:], mode='nearest')" in source
    assert "F.interpolate(p1, size=x_.shape[2:], mode='bilinear', align_corners=True)" in source


@pytest.mark.parametrize("opset", [17, 21])
def test_an_export_with_symbolic_sizes_resizes_to_the_value_at_each_size(opset):
    pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    from test_onnx_dynamic import torch_at

    from cnnspec.backends.runtime import compare, session
    from cnnspec.backends.weights import random_weights

    network = cnnspec.loads(PYRAMID)
    weights = random_weights(network, 0)
    model = network.to_onnx(weights=weights, dynamic="hw", opset=opset)
    import onnx
    onnx.checker.check_model(model, full_check=True)
    sess = session(model)
    for size in ((37, 37), (29, 44)):
        x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32)
        with torch.no_grad():
            expected = torch_at(PYRAMID, (3, *size), weights)(torch.from_numpy(x)).numpy()
        (actual,) = sess.run(None, {sess.get_inputs()[0].name: x})
        assert actual.shape == expected.shape == (2, 16, *size)
        assert compare(actual, expected).relative_l2 < 1e-5


def test_the_sizes_a_network_of_values_takes_are_those_it_checks_at():
    """The input-size analysis follows named values: a resize to a value's size, and an `add` of
    values (a coarse map upsampled by two adds to the finer one only at some sizes)."""
    doubled = PYRAMID.replace("upsample size=c1", "upsample scale=2").replace("3x37x37", "3x36x36")
    for text in (PYRAMID, doubled):
        analysis = cnnspec.loads(text).input_sizes()
        for n in range(1, 60):
            try:
                checked = cnnspec.loads(text, input=(3, n, 36))
                valid = not any(d.severity == "error" for d in checked.diagnostics)
            except cnnspec.SpecError:
                valid = False
            assert analysis.axes[0].valid(n) == valid, (text, n)


@pytest.mark.parametrize("text", [PYRAMID, RANKS, LINE], ids=["pyramid", "3d", "1d"])
def test_receptive_fields_and_activations_equal_the_gradient_oracle(text):
    pytest.importorskip("torch")
    from oracle import measure_activations
    from test_receptive_field_oracle import assert_clean, oracle

    network = cnnspec.loads(text)
    assert_clean(oracle(network), measure_activations(network, network.name))


def test_the_value_a_resize_takes_the_size_of_gives_no_field():
    """A resize of the input to a deep value's size sees one input pixel's neighbourhood (the
    upsampled map's), not the value's field."""
    network = cnnspec.loads("input x: 3x32x32\nc = conv 4 7x7 stride=4, relu\nx -> upsample size=c\n")
    assert network.receptive_field == "1"


@pytest.mark.parametrize("text", [PYRAMID, RANKS], ids=["pyramid", "3d"])
def test_printing_round_trips(text):
    from test_fmt import meaning

    printed = print_spec(parse_text(text, "<spec>"))
    assert printed == text
    assert meaning(printed) == meaning(text)
    assert format_text(text) == text


def test_the_summary_says_which_value_a_resize_reads():
    import json

    from cnnspec.summary import render_summary

    records = json.loads(render_summary(cnnspec.loads(PYRAMID), "json"))["layers"]
    reads = [(r["kind"], r.get("reads")) for r in records if r["kind"] == "upsample"]
    assert reads == [("upsample", ["lat", "c1"]), ("upsample", ["p1", "x"]), ("upsample", ["p1", "x"])]


def codes_at(text: str):
    try:
        diagnostics = cnnspec.loads(text).diagnostics
    except cnnspec.SpecError as error:
        diagnostics = error.diagnostics
    return [(d.code, d.span.line, d.span.column, d.help) for d in diagnostics]


@pytest.mark.parametrize("text, expected", [
    # a value read only for its size is read: no W002
    ("input x: 3x8x8\nc = maxpool 2x2\nx -> upsample size=c\n", []),
    ("input x: 3x8x8\nsmall = maxpool 2x2\nupsample size=smal\n", [("W002", 2, 1, None), ("E150", 3, 15, "did you mean `small`?")]),
    ("input x: 3x8x8\nupsample size=later\nlater = relu\n", [("E151", 2, 15, "move the statement that binds it above this one")]),
    ("input x: 3x8x8\nv = flatten\nx -> upsample size=v\n",
     [("E214", 3, 20, "name a value with 2 spatial dimensions, or give the size: `size=14x14`")]),
    ("input x: 3x8x8\nhead: { c = relu; x -> upsample size=c }\n",
     [("E150", 2, 19, None)]),
])
def test_resize_mistakes_are_located(text, expected):
    found = codes_at(text)
    assert [(c, line, column) for c, line, column, _ in found] == [(c, line, column) for c, line, column, _ in expected]
    for (_, _, _, help), (_, _, _, wanted) in zip(found, expected):
        if wanted is not None:
            assert help == wanted


def test_a_block_parameter_named_like_a_value_gives_the_size():
    network = cnnspec.loads("input x: 3x8x8\nc = relu\nblock up(c) { upsample size=c }\nc -> up(12)\n")
    assert network.output_shape == (3, 12, 12)


def test_the_readme_example_checks_clean_with_the_shapes_it_states():
    import re
    import textwrap
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = [textwrap.dedent(b) for b in re.findall(r"```cnn\n(.*?)```", readme, re.S) if "size=c1" in b]
    network = cnnspec.loads(example)
    assert network.diagnostics == [] and network.output_shape == (16, 64, 64)
    assert [row.out_shape for row in network.rows if row.kind == "upsample"] == [(16, 32, 32), (16, 64, 64)]
