"""Differential test: for random valid specs, the ONNX model passes the full checker, onnx's
shape inference agrees with cnnspec's shapes, and onnxruntime computes what PyTorch computes
(eval mode, the same weights, random batch-norm statistics so folding is exercised): within
1e-4 relative L2, or 1e-5 per element where the output cancels to about zero."""

import os

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
from strategies import run_examples  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.runtime import session  # noqa: E402
from cnnspec.backends.weights import random_weights  # noqa: E402
from cnnspec.frontend.printer import print_spec  # noqa: E402
from cnnspec.layers import REGISTRY  # noqa: E402

EXAMPLES_PER_KIND = int(os.environ.get("CNNSPEC_EXAMPLES", 8))
STRUCTURE_EXAMPLES = 5 * EXAMPLES_PER_KIND
TOLERANCE = 1e-4


def relative_l2(a, b) -> float:
    scale = max(float(np.linalg.norm(b)), 1e-6)
    return float(np.linalg.norm(a - b)) / scale


def inferred_shapes(model) -> dict:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return shapes


def check_against_onnxruntime(spec_ir, shape, fold_bn: bool):
    text = print_spec(spec_ir)
    network = cnnspec.loads(text)
    weights = random_weights(network, seed=0, statistics=True)
    model = network.to_onnx(weights=weights, fold_bn=fold_bn)
    onnx.checker.check_model(model, full_check=True)

    shapes = inferred_shapes(model)
    assert shapes["output"][1:] == network.output_shape, text
    for row in network.rows:
        if row.kind in REGISTRY and row.path in shapes:
            assert shapes[row.path][1:] == row.out_shape, (row.path, text)

    reference = network.to_torch()
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    reference.eval()
    x = np.random.default_rng(1).standard_normal((2, *network.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    (actual,) = session(model, threads=1).run(None, {model.graph.input[0].name: x})
    assert actual.shape == expected.shape, text
    # relative to the output, with an absolute floor for outputs that cancel to about zero
    # (a normalised pair averaged away), where float rounding is all there is to compare
    floor = 1e-5 * np.sqrt(expected.size)
    assert np.linalg.norm(actual - expected) <= TOLERANCE * np.linalg.norm(expected) + floor, \
        (relative_l2(actual, expected), text)


def check(spec_ir, shape, index):
    check_against_onnxruntime(spec_ir, shape, fold_bn=index % 2 == 0)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_onnxruntime_agrees_with_torch(kind):
    assert run_examples(kind, EXAMPLES_PER_KIND, check) >= EXAMPLES_PER_KIND


def test_structures_agree_between_onnxruntime_and_torch():
    assert run_examples(None, STRUCTURE_EXAMPLES, check) >= STRUCTURE_EXAMPLES
