"""The receptive field and the activation memory against the built PyTorch module (`oracle.py`):
the gradient support of output positions equals cnnspec's field wherever it fits in the input,
and spans the input where cnnspec says `whole`; the element counts of the tensors each layer and
merge returns equal cnnspec's activation figures. On hand-written cases of every merge kind and
field transform in the quick run; behind `-m slow` (which CI runs too), every zoo network (at a
larger input where it is small) and over 300 random specs of the differential generator.
"""

import os
from pathlib import Path

import pytest
from conftest import SPECS

torch = pytest.importorskip("torch")

from oracle import (  # noqa: E402
    BATCH,
    Tally,
    load_at,
    measurable,
    measure_activations,
    measure_rows,
    positive_input,
)
from strategies import run_examples  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.frontend.printer import print_spec  # noqa: E402
from cnnspec.layers import REGISTRY  # noqa: E402

#: raise for a longer hunt: CNNSPEC_EXAMPLES=200 python -m pytest tests/test_receptive_field_oracle.py
EXAMPLES_PER_KIND = max(1, int(os.environ.get("CNNSPEC_EXAMPLES", 12)) * 3 // 4)
STRUCTURE_EXAMPLES = 5 * EXAMPLES_PER_KIND


def oracle(network, rows=None, context: str = "") -> Tally:
    tally = Tally(specs=1)
    model = measurable(network)
    x = positive_input(network)
    measure_rows(network, network.rows if rows is None else rows, model, x, context or network.name, tally)
    return tally


def assert_clean(tally: Tally, problems=()) -> None:
    failures = tally.failures + list(problems)
    assert not failures, "\n".join(failures[:20])


# ---------------------------------------------------------------- hand-written cases

CASES = {
    # the defect of issue 12: squeeze-and-excitation made every later 3x3 add 64, not 2
    "squeeze_excitation": "input x: 3x32x32\n" + "scale { avgpool global; conv 3 1x1; sigmoid }\n" * 3
                          + "conv 3 3x3 pad=1\n",
    "residual_projection": "input x: 4x40x40\nresidual {\n  conv 8 3x3 stride=2 pad=1; relu; conv 8 3x3 pad=1\n"
                           "} shortcut { conv 8 1x1 stride=2 }\nresidual { conv 8 3x3 pad=1 }\nconv 8 3x3 pad=1\n",
    "asymmetric_branches": "input x: 1x40\nadd {\n  conv 1 2 pad=((1, 0),)\n  conv 1 2 pad=((0, 1),)\n}\nconv 1 3\n",
    "concat_crop": "input x: 2x48\nconcat crop {\n  identity\n  { conv 2 5; conv 2 3 dilation=2 }\n}\nconv 2 3\n",
    "unet_like": "input x: 1x64x64\nconcat crop {\n  identity\n  { maxpool 2x2; conv 4 3x3; deconv 2 2x2 stride=2 }\n}\n"
                 "conv 2 3x3\n",
    "transposed": "input x: 2x24\ndeconv 2 4 stride=2 pad=1\nconv 2 3\ndeconv 2 3 stride=2 dilation=2\nconv 2 2\n",
    "nearest_after_stride": "input x: 1x48\nconv 1 1 stride=2\nupsample 2\nconv 1 2\nupsample size=40\nconv 1 3\n",
    "bilinear": "input x: 1x24x24\nupsample 2 bilinear\nconv 1 3x3\nupsample 3 bilinear align_corners=true\nconv 1 2x2\n",
    "adaptive": "input x: 1x50\navgpool adaptive 7\nconv 1 2\nmaxpool adaptive 3\n",
    "dilated_stride": "input x: 1x32x32\nconv 2 3x3 dilation=3 stride=2\nmaxpool 3x3 stride=2 dilation=2\nconv 2 1x1 stride=3\n"
                      "avgpool global\n",
    "chunk_of_concat": "input x: 2x40\nconcat {\n  conv 2 5 pad=2\n  identity\n}\nchunk 2 1\nconv 2 3\n",
    "shuffle": "input x: 2x40\nconcat {\n  conv 2 5 pad=2\n  identity\n}\nchannel_shuffle 2\nchunk 2 0\nconv 2 3\n",
    "flatten_chunk": "input x: 4x7x5\nconv 4 3x3 pad=1\nflatten\nchunk 28 11\nrelu\n",
    "channels_last": "input x: 4x16x16\nchannels_last\nln last\nlinear 8 last\nchannels_first\nconv 4 3x3 pad=1\n"
                     "channels_last\nconv 3 3 pad=1\nchunk 3 1\nchannels_first\n",
    "linear_last": "input x: 2x12x20\nlinear 5 last\nconv 2 3x3\n",
    "groupnorm": "input x: 4x20x20\nconv 4 3x3 pad=1\ngroupnorm 2\nconv 4 3x3 pad=1\n",
    "reshape": "input x: 4x12x12\nreshape 2x2x12x12\nreshape 4x12x12\nconv 4 3x3\nreshape shape=(4, -1)\nrelu\n",
    "broadcast_add": "input x: 3x30x30\nadd {\n  conv 3 3x3 pad=1\n  avgpool global\n  avgpool adaptive 1x30\n}\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_written_fields_equal_the_gradient_support(name):
    network = cnnspec.loads(CASES[name])
    tally = oracle(network, context=name)
    assert_clean(tally, measure_activations(network, name))
    assert tally.exact + tally.whole > 0
    if name == "transposed":
        # a transposed conv of stride 2 and dilation 2 leaves outputs that no input reaches
        assert tally.empty > 0


def test_squeeze_excitation_is_whole_and_keeps_the_main_grid():
    """Issue 12's minimal case, measured: the gated maps and the conv after them see the whole
    32x32 input, and the conv still moves over the main path's grid of jump 1."""
    network = cnnspec.loads(CASES["squeeze_excitation"])
    assert [cnnspec.analysis.stats.describe_field(r.rf) for r in network.rows if r.kind in ("scale", "conv")][-4:] == \
        ["whole"] * 4
    last = network.rows[-1].rf
    assert [f.j for f in last] == [1, 1]
    assert last[0].at(16) == (15, 17)
    assert oracle(network).whole > 0


# ---------------------------------------------------------------- the zoo

#: measured in the quick run: small networks with a plain path, a global pool and a deconv stack;
#: the rest behind `-m slow`, MobileNetV3 (whose figures were wrong: squeeze-and-excitation),
#: ShuffleNet (channels chunked and shuffled), SqueezeNet (a stem that never reads the last row)
#: and U-Net's crops among them
QUICK = ("autoencoder", "dcgan_discriminator", "lenet5", "lenet_gluon")  # a subset of QUICK_ZOO: the oracle is slower
ZOO = sorted(p.stem for p in SPECS.glob("*.cnn"))

#: inputs other than a multiple of the declared one: the generator's 1x1 latent (where no field
#: fits), U-Net at the smallest valid size where its field is the published 204 (its 572x572
#: takes gigabytes in float64)
ZOO_INPUTS = {"dcgan_generator": (100, 8, 8), "unet": (1, 220, 220)}


def zoo_rows(network, count: int = 8) -> list:
    """A few rows along the network: the first and the last, the first whole one and the first
    merge of each kind, the deepest whose centre's field fits in the input, and some between."""
    rows = network.rows
    chosen = {0, len(rows) - 1}
    chosen |= {i for i in range(0, len(rows), max(1, len(rows) // (count - 4)))}
    for test in (lambda r: any(f.whole for f in r.rf), lambda r: r.kind == "add", lambda r: r.kind == "concat",
                 lambda r: r.kind == "scale", lambda r: r.kind in ("chunk", "channel_shuffle", "deconv", "upsample")):
        chosen |= {next((i for i, r in enumerate(rows) if test(r)), 0)}
    fits = [i for i, r in enumerate(rows) if r.rf and all(
        (s := f.seen((r.out_shape[f.axis] - 1) // 2 if f.axis is not None else 0)) is not None
        and s[0] >= 0 and s[1] < f.size for f in r.rf)]
    if fits:
        chosen.add(fits[-1])
    return [rows[i] for i in sorted(chosen)]


#: a network is measured at twice its input where its float64 activations stay this small (more
#: fields fit; the gradient of each row measured costs a backward pass of the whole network)
SMALL = 16 * 2**20


def published_fields() -> dict[str, str]:
    table = Path(SPECS.parent / "docs" / "zoo.md").read_text()
    published = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0].startswith("`"):
            published[cells[0].strip("`")] = cells[6]
    assert set(published) == set(ZOO)
    return published


def measured(network, rows, context: str) -> tuple[Tally, Tally]:
    """The oracle over `rows` but the last, and over the last row alone, on one built model (a
    batch of one sample: no zoo network normalises over a group of one value per sample)."""
    model, x = measurable(network), positive_input(network, batch=1)
    before, last = Tally(specs=1), Tally(specs=1)
    measure_rows(network, rows[:-1], model, x, context, before)
    measure_rows(network, rows[-1:], model, x, context, last)
    return before, last


def check_zoo(name: str) -> None:
    """A few rows of the network (at twice its input where it is small), its activation figures
    at its declared input (U-Net's at a smaller valid one), and the field docs/zoo.md publishes:
    the output's, measured at the network's input (or at one where cnnspec gives the same
    figure: the generator's latent at 8x8, U-Net at 220x220)."""
    path = SPECS / f"{name}.cnn"
    declared = cnnspec.load(path)
    at_declared = load_at(path, 1, ZOO_INPUTS.get(name))
    scale = 2 if declared.activation_bytes <= SMALL and name not in ZOO_INPUTS else 1
    network = load_at(path, scale, ZOO_INPUTS.get(name)) if scale > 1 else at_declared
    before, last = measured(network, zoo_rows(network),
                            f"zoo:{name} at {'x'.join(map(str, network.input_shape))}")
    assert_clean(before, measure_activations(declared if name not in ZOO_INPUTS else at_declared, f"zoo:{name}"))
    assert_clean(last)
    assert before.exact > 0
    assert published_fields()[name] == declared.receptive_field == at_declared.receptive_field
    if scale > 1:
        # the output measured again at the declared input, where the table's figure holds
        _, last = measured(at_declared, at_declared.rows[-1:], f"docs/zoo.md {name}")
        assert_clean(last)
    assert last.exact > 0 and (last.whole > 0) == (declared.receptive_field == "whole")


@pytest.mark.parametrize("name", QUICK)
def test_zoo_fields_activations_and_published_field_quick(name):
    check_zoo(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ZOO) - set(QUICK)))
def test_zoo_fields_activations_and_published_field(name):
    check_zoo(name)


# ---------------------------------------------------------------- random specs


def grown(shape):
    """A larger input for a random spec, so that more fields fit: 4x the length in 1D, 3x the
    side in 2D, 2x in 3D."""
    factor = {1: 4, 2: 3, 3: 2}.get(len(shape) - 1, 1)
    return (shape[0], *(n * factor for n in shape[1:]))


class RandomRun:
    def __init__(self):
        self.tally = Tally()
        self.problems: list[str] = []
        self.specs = 0

    def check(self, spec_ir, shape, index):
        text = print_spec(spec_ir)
        network = cnnspec.loads(text)
        try:
            larger = cnnspec.loads(text, input=grown(network.input_shape))
        except cnnspec.SpecError:
            # fixed sizes (a reshape's, a dense layer's) that hold only at the declared input
            larger = network
        tally = oracle(larger, context=f"random spec #{index} at {larger.input_shape}:\n{text}\n")
        self.tally.add(tally)
        self.problems += measure_activations(network, f"random spec #{index}:\n{text}\n")
        self.specs += 1
        assert not tally.failures, "\n".join(tally.failures[:10])
        assert not self.problems, "\n".join(self.problems[:10])


@pytest.fixture
def one_thread():
    """Small models run fastest on one thread (and are not slowed by a busy machine's others)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_random_specs_fields_and_activations(one_thread):
    """Every layer kind inside random structures, then structures alone: over 300 specs."""
    run = RandomRun()
    for kind in sorted(REGISTRY):
        run_examples(kind, EXAMPLES_PER_KIND, run.check)
    run_examples(None, STRUCTURE_EXAMPLES, run.check)
    assert run.specs >= 300 or EXAMPLES_PER_KIND < 9
    assert run.tally.exact > 10 * run.specs
    # (positions that see nothing are rarer: the hand-written transposed convs hold them)
    assert run.tally.whole > 0 and run.tally.sizes > 0 and run.tally.borders > 0
    print(f"\nreceptive-field oracle: {run.specs} random specs, {run.tally.rows} rows; {run.tally.exact} fields "
          f"equal ({run.tally.borders} by a border, {run.tally.whole} whole), {run.tally.empty} positions that see "
          f"nothing, {run.tally.sizes} size figures; batch of {BATCH}")
