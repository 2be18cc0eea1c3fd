import functools
import json
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SPECS = ROOT / "specs"


@pytest.fixture(scope="session")
def reference():
    """The reference figures (a copy of the project's models.json, read off torchvision, timm and torch)."""
    return json.loads((TESTS / "data" / "models.json").read_text())


REFERENCE_FILE = TESTS / "data" / "models.json"
#: the reference entry of a zoo spec whose file name differs from the entry's key
RENAMED = {"lenet5": "lenet5_d2l", "lenet_gluon": "lenet_gluon_seed"}


def zoo_cases(sources: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(spec file stem, reference key) for every zoo spec with reference figures; with `sources`,
    only the references read off those implementations (`torchvision`, `plain torch`, `timm`)."""
    figures = json.loads(REFERENCE_FILE.read_text())
    cases = []
    for path in sorted(SPECS.glob("*.cnn")):
        key = RENAMED.get(path.stem, path.stem)
        if key in figures and (not sources or figures[key]["source"].startswith(sources)):
            cases.append((path.stem, key))
    return cases


#: the references whose state_dict keys the zoo reproduces (torchvision's, so checkpoints load);
#: the U-Net's keys are information only (its reference is a plain nested module)
KEYED_SOURCES = ("torchvision", "plain torch.nn.Sequential", "PyTorch DCGAN", "timm")


#: codes a backend raises when it builds a checked spec, with the step that raises them
BACKEND_CODES = {"E303": lambda network: network.to_torch(), "E304": lambda network: network.to_onnx(opset=17),
                 "E220": lambda network: network.to_onnx(dynamic="hw")}


#: codes raised by the sizes a caller gives the inputs (`--input NAME=...`, `input=`), with those sizes
INPUT_OVERRIDES = {"E143": {"right": (1, 64, 64)}}


#: a zoo network is full-size for the test suite past these figures: building, exporting and
#: running it takes seconds to tens of seconds and up to gigabytes, so its full-size runs carry
#: the `slow` marker (ResNet-34 and larger; ResNet-18, the mobile networks, GoogLeNet and the
#: small networks stay in the quick run)
FULL_SIZE_PARAMS = 20_000_000
FULL_SIZE_MACS = 2_500_000_000


@functools.cache
def full_size(name: str) -> bool:
    """Whether the zoo spec `name` is over the suite's full-size figures (read from its check)."""
    import cnnspec

    network = cnnspec.load(SPECS / f"{name}.cnn")
    return network.params > FULL_SIZE_PARAMS or network.macs > FULL_SIZE_MACS


#: the zoo networks that a test building each network through a backend runs in the quick run (the
#: rest run behind `slow`, as `.ci/run` does): small, and between them a plain stack, a decoder of
#: transposed convs, concatenated branches, two inputs through a shared encoder
QUICK_ZOO = ("autoencoder", "dcgan_discriminator", "dcgan_generator", "lenet5", "lenet_gluon", "siamese", "squeezenet1_1")


#: the layer kinds that the per-kind random tests (the differential tests against PyTorch and
#: onnxruntime, every option reaching every backend, the input sizes) run in the quick run: one or
#: more of each way a kind is built (kernels and windows, normalisations, resampling, reshapes,
#: channel moves, an activation with and one without a parameter); the kinds like one of these
#: (the other activations, dropout2d, identity, ...) run behind -m slow, as `.ci/run` does
QUICK_KINDS = ("avgpool", "bn", "channels_last", "chunk", "conv", "deconv", "dropout", "flatten", "groupnorm",
               "layerscale", "leaky_relu", "linear", "ln", "maxpool", "mul", "relu", "reshape", "slice",
               "softmax", "upsample")


def kind_params(kinds) -> list:
    """`kinds` as parametrize values, those outside QUICK_KINDS marked `slow`."""
    return [kind if kind in QUICK_KINDS else pytest.param(kind, marks=pytest.mark.slow) for kind in kinds]


def zoo_params(names, quick: tuple[str, ...] | None = None) -> list:
    """`names` as parametrize values, the full-size networks marked `slow` (run with `-m slow`),
    and with `quick`, every network outside it too."""
    return [pytest.param(name, marks=pytest.mark.slow) if full_size(name) or (quick is not None and name not in quick)
            else name for name in names]
