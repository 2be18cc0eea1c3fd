"""The receptive field's figures, without torch: issue 12's regressions, the merge kinds and field
transforms worked out by hand, the summary's `whole`, and the formulas' doctests.
`tests/test_receptive_field_oracle.py` measures the same figures on the built PyTorch module."""

import doctest
import json
import typing

import pytest
from conftest import SPECS

import cnnspec
from cnnspec.analysis import stats
from cnnspec.analysis.stats import describe_field
from cnnspec.layers import REGISTRY, base


def fields(text: str) -> list[str]:
    return [describe_field(row.rf) for row in cnnspec.loads(text).rows]


def test_the_formulas_doctests_pass():
    for module in (stats, base):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 5 and result.failed == 0, module.__name__


def test_every_layer_kind_says_how_it_moves_the_field():
    """Each kind declares its `field`, and what it overrides agrees: only a "reads" kind has a
    window or feature reads (and has one of them), only a "permute" kind an axis order."""
    for name, kind in REGISTRY.items():
        declared = vars(type(kind)).get("field") or getattr(kind, "field", None)
        assert declared in typing.get_args(base.FieldMove), f"`{name}` does not say how it moves the field"
        overrides = {method for method in ("window", "feature_reads", "axis_order")
                     if getattr(type(kind), method) is not getattr(base.LayerKind, method)}
        if declared == "reads":
            assert overrides & {"window", "feature_reads"} and "axis_order" not in overrides, name
        elif declared == "permute":
            assert overrides == {"axis_order"}, name
            for rank in (2, 3, 4):
                assert sorted(kind.axis_order(rank)) == list(range(rank)), name
        else:
            assert not overrides, name


def test_squeeze_excitation_gives_the_whole_input_not_an_explosion():
    """Issue 12: after `scale { avgpool global; ... }` the merged flow took the pooled branch's
    jump, and the field went 32, 96, 1088, 3136, 34880."""
    network = cnnspec.loads("input x: 3x32x32\n" + "scale { avgpool global; conv 3 1x1; sigmoid }\n" * 3
                            + "conv 3 3x3 pad=1\n")
    merges = [row for row in network.rows if row.kind == "scale"]
    assert [describe_field(row.rf) for row in merges] == ["whole"] * 3
    assert describe_field(network.rows[-1].rf) == network.receptive_field == "whole"
    for row in merges + [network.rows[-1]]:
        # later layers step over the main path's grid; the field is bounded by the input and padding
        assert [f.j for f in row.rf] == [1, 1]
        assert all(f.r <= 34 for f in row.rf)
        assert all(f.const == (0, 31) for f in row.rf)
    # the 3x3 after the merges adds 2, not 64: position 16 sees 15 .. 17 through its window
    assert network.rows[-1].rf[0].at(16) == (15, 17)


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_large"])
def test_the_squeeze_excitation_networks_are_whole_and_bounded(name):
    network = cnnspec.load(f"zoo:{name}")
    assert network.receptive_field == "whole"
    assert max(int(f.r) for row in network.rows for f in row.rf) < 1000  # padding included
    # whole from the first squeeze-and-excitation's pool on, and only from there
    first = next(i for i, row in enumerate(network.rows) if row.kind == "avgpool")
    assert all(describe_field(row.rf) == "whole" for row in network.rows[first:])
    assert all(describe_field(row.rf) != "whole" for row in network.rows[:first])


@pytest.mark.parametrize("text, expected", [
    # the union of two windows set apart by their padding is wider than either
    ("input x: 1x32\nadd {\n  conv 1 2 pad=((1, 0),)\n  conv 1 2 pad=((0, 1),)\n}\n", ["2", "2", "3"]),
    # concat crop: the identity's centre crop sits inside the conv's window
    ("input x: 1x32\nconcat crop {\n  identity\n  conv 1 5\n}\nconv 1 3\n", ["1", "5", "5", "7"]),
    # a transposed conv of 4 taps at stride 2 reads two inputs (the old figure was 4)
    ("input x: 1x16\ndeconv 1 4 stride=2 pad=1\nconv 1 2\n", ["2", "3"]),
    # nearest upsampling repeats inputs two positions apart: a 2-tap window then spans 3
    ("input x: 1x32\nconv 1 1 stride=2\nupsample 2\nconv 1 2\n", ["1", "1", "3"]),
    # a chunk of a concat sees what its channels see
    ("input x: 2x32\nconcat {\n  conv 2 3 pad=1\n  identity\n}\nchunk 2 1\n", ["3", "1", "3", "1"]),
    # after a channel shuffle, each half holds channels of both branches
    ("input x: 2x32\nconcat {\n  conv 2 5 pad=2\n  identity\n}\nchannel_shuffle 2\nchunk 2 0\n",
     ["5", "1", "5", "5", "5"]),
    # a flattened vector is one position; a chunk of it, the positions its elements came from
    ("input x: 4x7\nflatten\nchunk 28 16\n", ["whole", "1"]),
    # channels last: positions stay, and a dense layer over the channels keeps them
    ("input x: 4x16x16\nchannels_last\nlinear 8 last\nchannels_first\nconv 4 3x3 pad=1\n", ["1", "1", "1", "3"]),
    # a dense layer over a map's last axis, which holds positions, gathers it
    ("input x: 2x12x20\nlinear 5 last\n", ["1xwhole"]),
    # a stride-2 1x1 conv never reads the last position of 8: its global pool sees 7
    ("input x: 1x8\nconv 1 1 stride=2\navgpool global\n", ["1", "7"]),
])
def test_fields_worked_out_by_hand(text, expected):
    assert fields(text) == expected


def test_squeezenet_never_reads_the_last_row_and_column():
    """Its unpadded 3x3 stem at stride 2 reads 0 .. 222 of 224 (the old figure said 399)."""
    network = cnnspec.load("zoo:squeezenet1_1")
    assert network.receptive_field == "223"


def test_the_summary_says_what_whole_means():
    network = cnnspec.load("zoo:resnet18")
    table = network.summary()
    assert "whole" in table and "RF:" in table and "spans the whole input" in table
    assert "spans the whole input" in network.summary(format="markdown")
    layers = json.loads(network.summary(format="json"))["layers"]
    assert layers[-1]["receptive_field"] == "whole" and json.loads(network.summary(format="json"))[
        "receptive_field"] == "whole"
    assert "RF:" not in cnnspec.loads("input x: 3x32x32\nconv 8 3x3\n").summary()


def test_published_fields_in_the_zoo_table():
    table = (SPECS.parent / "docs" / "zoo.md").read_text()
    for name, field in (("efficientnet_b0", "whole"), ("mobilenet_v3_large", "whole"), ("unet", "204"),
                        ("squeezenet1_1", "223"), ("resnet50", "whole")):
        assert f"| `{name}` |" in table
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert row.split("|")[7].strip() == field
    assert "8230389478934827832549" not in table and "361637098395" not in table
