"""The input-size analysis (`cnnspec.analysis.sizes`) against brute force: for random specs and
the zoo, the sizes it predicts valid are exactly those at which the checker accepts the spec
with the same weights (every state_dict shape unchanged), over a range of sizes; on the zoo's
U-Net they are also exactly those PyTorch's own shape checks accept (on the meta device)."""

import os

import pytest
from conftest import SPECS, kind_params
from strategies import run_examples

import cnnspec
from cnnspec.analysis.sizes import Constraint, Piece, input_sizes, summarise
from cnnspec.backends.weights import weight_shapes
from cnnspec.diagnostics import SpecError
from cnnspec.frontend.printer import print_spec

EXAMPLES = int(os.environ.get("CNNSPEC_EXAMPLES", 4))
#: the kinds whose rules depend on the spatial sizes, each with random structures around it
SIZE_KINDS = ("conv", "deconv", "maxpool", "avgpool", "upsample", "reshape", "flatten", "linear", "chunk",
              "channels_last", "ln", "groupnorm", "layerscale", "bn")


def accepted(text: str, network, axis: int, n: int) -> bool:
    """Brute force: the checker accepts the spec with spatial axis `axis` at `n`, and its weights
    keep their shapes."""
    shape = list(network.input_shape)
    shape[axis + 1] = n
    try:
        other = cnnspec.loads(text, input=tuple(shape))
    except SpecError:
        return False
    return weight_shapes(other) == weight_shapes(network)


def check_random(spec_ir, shape, index):
    text = print_spec(spec_ir)
    network = cnnspec.loads(text)
    for axis in input_sizes(network).axes:
        sizes = range(1, 3 * axis.declared + 12)
        predicted = [n for n in sizes if axis.valid(n)]
        measured = [n for n in sizes if accepted(text, network, axis.axis, n)]
        assert predicted == measured, (text, axis.name)
        assert predicted == [n for n in sizes if n in axis.constraint], (text, axis.constraint)
        assert axis.declared in predicted


@pytest.mark.parametrize("kind", kind_params(SIZE_KINDS))
def test_predicted_sizes_equal_brute_force_on_random_specs(kind):
    assert run_examples(kind, EXAMPLES, check_random) >= EXAMPLES


def test_predicted_sizes_equal_brute_force_on_random_structures():
    assert run_examples(None, 4 * EXAMPLES, check_random) >= 4 * EXAMPLES


@pytest.mark.parametrize("name, sizes, expected", [
    # unpadded convs, 2x2 pools and crops: every size from 188, where the bottom map is 1x1
    ("unet", range(170, 240), "H and W must be at least 188"),
    # a flatten into `linear 120`: sizes whose map at the flatten is 16x5x5, as declared
    ("lenet5", range(1, 60), "H and W must be one of 28, 29, 30 or 31"),
    ("autoencoder", range(1, 60), "H and W must be at least 25"),
    ("squeezenet1_1", range(1, 60), "H and W must be at least 25"),
])
def test_zoo_sizes_equal_brute_force(name, sizes, expected):
    path = SPECS / f"{name}.cnn"
    network = cnnspec.load(path)
    analysis = input_sizes(network)
    assert analysis.describe() == expected
    axis = analysis.axes[0]
    assert [n for n in sizes if axis.valid(n)] == [n for n in sizes if accepted_file(path, network, n)]


def accepted_file(path, network, n: int) -> bool:
    try:
        other = cnnspec.load(path, input=(network.input_shape[0], n, network.input_shape[2]))
    except SpecError:
        return False
    return weight_shapes(other) == weight_shapes(network)


def test_unet_sizes_equal_what_pytorch_accepts():
    torch = pytest.importorskip("torch")
    network = cnnspec.load(SPECS / "unet.cnn")
    model = network.to_torch(seed=0).eval().to("meta")
    analysis = input_sizes(network)

    def runs(h: int, w: int) -> bool:
        try:
            with torch.no_grad():
                model(torch.empty(1, 1, h, w, device="meta"))
        except RuntimeError:
            return False
        return True

    sizes = range(176, 204)
    assert [n for n in sizes if analysis.axes[0].valid(n)] == [n for n in sizes if runs(n, 572)]
    assert [n for n in sizes if analysis.axes[1].valid(n)] == [n for n in sizes if runs(572, n)]
    # the axes are independent: both at once where each is valid
    assert runs(188, 203) and not runs(187, 203)


def test_summary_of_periodic_parts():
    # multiples of 4 from 8, and 3 as an exception below
    outcomes = [(Piece(1, 2, 1), "refused"), (Piece(3, 3, 1), None), (Piece(4, 7, 1), "refused"),
                (Piece(8, None, 4), None), (Piece(9, None, 4), "refused"), (Piece(10, None, 2), "refused")]
    constraint = summarise(outcomes)
    assert constraint == Constraint(multiple=4, residues=(0,), at_least=8, also=(3,))
    assert constraint.describe(plural=True) == "multiples of 4, at least 8 (or 3)"
    assert [n for n in range(1, 30) if n in constraint] == [3, 8, 12, 16, 20, 24, 28]


def test_the_summary_shows_the_sizes_brute_force_finds():
    import json

    from click.testing import CliRunner

    from cnnspec.cli import main

    path = SPECS / "lenet5.cnn"
    network = cnnspec.load(path)
    table = CliRunner().invoke(main, ["summary", str(path), "--sizes"])
    assert table.exit_code == 0 and table.output.splitlines()[-1] == "sizes:       H and W must be one of 28, 29, 30 or 31"
    document = json.loads(CliRunner().invoke(main, ["summary", str(path), "--sizes", "--format", "json"]).output)
    valid = document["input_sizes"]["axes"]["H"]["only"]
    assert valid == [n for n in range(1, 60) if accepted_file(path, network, n)]
    assert "input_sizes" not in json.loads(network.summary(format="json"))  # only when asked for
    # what it cannot follow it says, and CSV, a row per layer, has no room for it
    assert "sizes: not worked out: the network has several inputs" in cnnspec.load(SPECS / "siamese.cnn").summary(
        format="markdown", sizes=True)
    assert CliRunner().invoke(main, ["summary", str(path), "--sizes", "--format", "csv"]).exit_code == 2
    with pytest.raises(ValueError, match="one row per layer"):
        network.summary(format="csv", sizes=True)
