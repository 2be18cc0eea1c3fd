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
from conftest import kind_params  # noqa: E402
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
    outputs = network.output_shapes or {"output": network.output_shape}
    assert [o.name for o in model.graph.output] == list(outputs), text
    for name, shape in outputs.items():
        assert shapes[name][1:] == shape, (name, text)
    # a module applied again (`use`) names its later applications' tensors otherwise, and an
    # output's name (`output "0"=p2`) is its graph output's, whatever layer has that path
    seen_paths = set(outputs)
    for row in network.rows:
        if row.kind in REGISTRY and row.path in shapes and row.path not in seen_paths:
            assert shapes[row.path][1:] == row.out_shape, (row.path, text)
        seen_paths.add(row.path)

    reference = network.to_torch()
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    reference.eval()
    rng = np.random.default_rng(1)
    shapes_in = list(network.input_shapes.values()) or [network.input_shape]
    inputs = [rng.standard_normal((2, *shape)).astype(np.float32) for shape in shapes_in]
    assert len(model.graph.input) == len(inputs), text
    with torch.no_grad():
        returned = reference(*(torch.from_numpy(x) for x in inputs))
    expected = [v.numpy() for v in returned.values()] if isinstance(returned, dict) else [returned.numpy()]
    actuals = session(model, threads=1).run(None, {i.name: x for i, x in zip(model.graph.input, inputs)})
    assert len(actuals) == len(expected) == len(outputs), text
    for name, actual, wanted in zip(outputs, actuals, expected):
        assert actual.shape == wanted.shape, (name, text)
        # relative to the output, with an absolute floor for outputs that cancel to about zero
        # (a normalised pair averaged away), where float rounding is all there is to compare
        floor = 1e-5 * np.sqrt(wanted.size)
        assert np.linalg.norm(actual - wanted) <= TOLERANCE * np.linalg.norm(wanted) + floor, \
            (name, relative_l2(actual, wanted), text)


def check(spec_ir, shape, index):
    check_against_onnxruntime(spec_ir, shape, fold_bn=index % 2 == 0)


@pytest.mark.parametrize("kind", kind_params(sorted(REGISTRY)))
def test_onnxruntime_agrees_with_torch(kind):
    assert run_examples(kind, EXAMPLES_PER_KIND, check) >= EXAMPLES_PER_KIND


def test_structures_agree_between_onnxruntime_and_torch():
    assert run_examples(None, STRUCTURE_EXAMPLES, check) >= STRUCTURE_EXAMPLES


# ---------------------------------------------------------------- long sums

#: a 2x25x61x43 map (65,575 values per channel, most of them the deconv's bias) averaged
GLOBAL_MEAN = "input x: 2x3x7x5\nupsample 3\ndeconv 2 1 stride=3\navgpool global\n"
#: the same map normalised in two groups of 2 x 65,575 values
GROUP_NORM = "input x: 2x3x7x5\nupsample 3\ndeconv 4 1 stride=3\ngroupnorm 2\n"


def errors_against_float64(text: str, seed: int) -> tuple[float, float]:
    """Relative L2 of PyTorch's and of onnxruntime's float32 outputs from a float64 run of the
    same PyTorch module on the same weights and input (as verify draws them)."""
    network = cnnspec.loads(text)
    weights = random_weights(network, seed, statistics=True)
    model = network.to_torch()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    model.eval()
    x = np.random.default_rng(seed + 1).standard_normal((2, *network.input_shape)).astype(np.float32)
    with torch.no_grad():
        single = model(torch.from_numpy(x)).numpy()
        double = model.double()(torch.from_numpy(x).double()).numpy()
    (actual,) = session(network.to_onnx(weights=weights)).run(None, {"x": x})
    return relative_l2(single, double), relative_l2(actual, double)


@pytest.mark.parametrize("text, seeds", [(GLOBAL_MEAN, [3]), (GROUP_NORM, range(6))])
def test_long_sums_are_as_accurate_as_pytorch(text, seeds):
    # onnxruntime's GlobalAveragePool was 2.0e-4 off the float64 mean at seed 3 where PyTorch is
    # 1.8e-7 (verify failed); its InstanceNormalization up to 2.5e-4, failing verify on 2 of 6
    # seeds. Two-level sums: 2.4e-7, and 1.5e-7 to 6.5e-7 for the group norm (PyTorch 0.5e-7 to 0.9e-7)
    from cnnspec.backends.runtime import verify_network

    for seed in seeds:
        torch_error, onnx_error = errors_against_float64(text, seed)
        assert onnx_error <= 10 * torch_error, (seed, torch_error, onnx_error)
        assert verify_network(cnnspec.loads(text), seed=seed).relative_l2 < 1e-5, seed


@pytest.mark.parametrize("text", [
    "input x: 3x1009\navgpool global\n",                       # 1D, a prime length: a padded grid
    "input x: 2x17x17\navgpool global\nflatten\n",             # 289 values: an exact 17 x 17 grid
    "input x: 4x20x20\ngroupnorm 2 affine=false\n",            # the two-pass norm without its affine step
    "input x: 6x3x9x11\ngroupnorm 3\navgpool global\n",        # 3D, both
])
def test_two_level_sums_agree_with_torch(text):
    network = cnnspec.loads(text)
    torch_error, onnx_error = errors_against_float64(text, 0)
    assert onnx_error <= max(10 * torch_error, 1e-6), (torch_error, onnx_error)
    ops = {node.op_type for node in network.to_onnx().graph.node}
    assert "ReduceSum" in ops and not ops & {"GlobalAveragePool", "InstanceNormalization"}
