"""Channel slices at any offset (`slice 16 48`, as x[:, 16:48]) and unequal splits (`split [16,
32, 16] 1`, as torch.split(x, [16, 32, 16], dim=1)[1]): shapes against PyTorch's own indexing,
PyTorch against onnxruntime and the emitted source, the export with symbolic sizes, receptive
fields against the gradient oracle, the printer's round trip, and the located refusals."""

import pytest

import cnnspec
from cnnspec.frontend.formatter import format_text
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec

#: every form: offsets, negative indices counted from the end, no end, listed and equal sizes
SLICES = """network slices
input x: 12x6x6
conv 64 1x1
a = slice 16 48
b = x -> conv 64 3x3 pad=1, slice start=-16
c = x -> conv 64 1x1, split [16, 32, 16] 1
d = x -> conv 64 1x1, split 24 2
e = x -> conv 64 1x1, slice 8 end=-40
f = x -> conv 64 1x1, slice 60 99
concat(a, b, c, d, e, f)
"""

#: channel slices of a concat of branches with different fields, and of positions moved onto the
#: channel axis (after `channels_last`)
FIELDS = """network fields
input x: 2x40
concat {
  conv 2 5 pad=2
  identity
  conv 3 9 pad=4
}
slice 1 4
conv 3 3
channels_last
split [3, 32, 3] 1
slice 2 end=-3
channels_first
"""


def test_slices_take_the_channels_pytorch_indexing_takes():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(SLICES)
    assert network.diagnostics == []
    model = network.to_torch(seed=0).eval()
    modules = dict(model.named_children())
    x = torch.randn(2, 12, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = modules["0"](x)
        expected = torch.cat([
            h[:, 16:48],
            modules["2"](x)[:, -16:],
            torch.split(modules["4"](x), [16, 32, 16], dim=1)[1],
            torch.split(modules["6"](x), 24, dim=1)[2],
            modules["8"](x)[:, 8:-40],
            modules["10"](x)[:, 60:99],
        ], dim=1)
        torch.testing.assert_close(model(x), expected)
    shapes = [row.out_shape[0] for row in network.rows if row.kind in ("slice", "split")]
    assert shapes == [32, 16, 32, 16, 16, 4]
    assert network.output_shape == tuple(expected.shape[1:])


@pytest.mark.parametrize("text", [SLICES, FIELDS], ids=["slices", "fields"])
def test_onnxruntime_and_the_emitted_source_agree_with_torch(text):
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime
    from test_torch_source import emitted_runs_as_to_torch

    check_against_onnxruntime(parse_text(text, "<spec>"), None, fold_bn=False)
    emitted_runs_as_to_torch(cnnspec.loads(text))


def test_the_emitted_source_indexes_and_splits_as_pytorch_users_write_it():
    source = cnnspec.loads(SLICES).to_torch_source()
    for line in ("x = x[:, 16:48]", "x = x[:, -16:]", "x = torch.split(x, [16, 32, 16], dim=1)[1]",
                 "x = torch.split(x, 24, dim=1)[2]", "x = x[:, 8:-40]"):
        assert line in source


def test_an_export_with_symbolic_sizes_slices_at_each_size():
    pytest.importorskip("onnxruntime")
    from test_onnx_dynamic import agree_at_sizes

    assert agree_at_sizes(SLICES, [(6, 6), (9, 4)]) == 2
    # positions on the channel axis: the listed sizes fix the size there (E220), equal ones follow it
    varying = "input x: 3x12x8\nchannels_last\nsplit 5 1\nslice 1 end=-1\nchannels_first\n"
    assert agree_at_sizes(varying, [(12, 8), (12, 13)]) == 2
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.loads("input x: 3x12x8\nchannels_last\nsplit [4, 8] 1\nchannels_first\n").to_onnx(dynamic="hw")
    assert {d.code for d in caught.value.diagnostics} == {"E220"}


@pytest.mark.parametrize("text", [SLICES, FIELDS], ids=["slices", "fields"])
def test_receptive_fields_and_activations_equal_the_gradient_oracle(text):
    pytest.importorskip("torch")
    from oracle import measure_activations
    from test_receptive_field_oracle import assert_clean, oracle

    network = cnnspec.loads(text)
    assert_clean(oracle(network), measure_activations(network, network.name))


def test_a_slice_sees_what_its_channels_see():
    network = cnnspec.loads(FIELDS)
    fields = [cnnspec.analysis.stats.describe_field(row.rf) for row in network.rows if row.kind == "slice"]
    # channels 1 to 3 of (conv 5 wide: 0, 1; identity: 2, 3; conv 9 wide: 4 to 6): the widest is 5,
    # not the concat's 9
    concat = next(row for row in network.rows if row.kind == "concat")
    assert (cnnspec.analysis.stats.describe_field(concat.rf), fields[0]) == ("9", "5")


@pytest.mark.parametrize("text", [SLICES, FIELDS], ids=["slices", "fields"])
def test_printing_round_trips(text):
    from test_fmt import meaning

    printed = print_spec(parse_text(text, "<spec>"))
    assert printed == text
    assert meaning(printed) == meaning(text)
    assert format_text(text) == text


def codes_at(text: str):
    try:
        diagnostics = cnnspec.loads(text).diagnostics
    except cnnspec.SpecError as error:
        diagnostics = error.diagnostics
    return [(d.code, d.span.line, d.span.column, d.message) for d in diagnostics]


@pytest.mark.parametrize("text, expected", [
    ("input x: 64x8x8\nsplit [16, 32] 1\n", ("E212", 2, 7, "split sizes sum to 48, the input has 64 channels")),
    ("input x: 64x8x8\nsplit [16, 48] 2\n", ("E103", 2, 16, "split index 2 is out of range for 2 pieces")),
    ("input x: 64x8x8\nsplit 30 3\n", ("E103", 2, 10, "split index 3 is out of range for 3 pieces")),
    ("input x: 64x8x8\nslice 48 16\n", ("E211", 2, 7, "`slice 48 16` takes no channel of 64")),
    ("input x: 64x8x8\nslice 64\n", ("E211", 2, 7, "`slice 64` takes no channel of 64")),
    ("input x: 64x8x8\nflatten\nslice 1 2\n", ("E214", 3, 1, "`slice` takes channels of a feature map, got a flat 4096")),
    ("input x: 64x8x8\nsplit [16, 0, 48] 1\n", ("E103", 2, 7, None)),
])
def test_slice_mistakes_are_located(text, expected):
    (found,) = codes_at(text)
    assert found[:3] == expected[:3]
    if expected[3] is not None:
        assert found[3] == expected[3]


def test_the_layer_listing_names_both_kinds():
    from click.testing import CliRunner

    from cnnspec.cli import main

    listing = CliRunner().invoke(main, ["layers"]).output
    assert "slice" in listing and "torch.split" in listing
