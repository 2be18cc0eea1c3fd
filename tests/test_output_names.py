"""Outputs returned under names of their own (`output "0"=p2, pool=p6`, as torchvision's feature
pyramid returns its levels): the keys of to_torch()'s and the emitted source's dict, the ONNX
graph's outputs by name against PyTorch, the printer's round trip, and the located refusals."""

import pytest

import cnnspec
from cnnspec.frontend.formatter import format_text
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec

LEVELS = """network levels
input x: 3x16x16
c1 = conv 4 3x3
c2 = conv 8 3x3
p = c2 -> maxpool 2x2
output "0"=c1, "1"=c2, pool=p, c2
"""


def test_outputs_are_returned_under_their_names_in_order():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(LEVELS)
    assert network.output_shapes == {"0": (4, 14, 14), "1": (8, 12, 12), "pool": (8, 6, 6), "c2": (8, 12, 12)}
    model = network.to_torch(seed=0).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        c1 = model.get_submodule("0")(x)
        c2 = model.get_submodule("1")(c1)
    assert list(out) == ["0", "1", "pool", "c2"]
    torch.testing.assert_close(out["0"], c1)
    torch.testing.assert_close(out["pool"], torch.nn.functional.max_pool2d(c2, 2))
    torch.testing.assert_close(out["1"], out["c2"])
    from test_torch_source import emitted_runs_as_to_torch
    emitted_runs_as_to_torch(network)


def test_the_onnx_graph_has_one_output_per_name_as_pytorch_computes_them():
    pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    import onnx

    from cnnspec.backends.runtime import session
    from cnnspec.backends.weights import random_weights

    network = cnnspec.loads(LEVELS)
    weights = random_weights(network, 0)
    model = network.to_onnx(weights=weights)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["0", "1", "pool", "c2"]
    reference = network.to_torch().eval()
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x))
    sess = session(model)
    for name, actual in zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})):
        np.testing.assert_allclose(actual, expected[name].numpy(), rtol=1e-5, atol=1e-6)


def test_printing_round_trips():
    from test_fmt import meaning

    printed = print_spec(parse_text(LEVELS, "<spec>"))
    assert printed == LEVELS
    assert meaning(printed) == meaning(LEVELS)
    assert format_text(LEVELS.replace('"1"=c2', '"1" = c2')) == LEVELS


@pytest.mark.parametrize("text, expected", [
    ('input x: 3x8x8\nc = relu\noutput ""=c\n', [("E128", 3, 11)]),
    ("input x: 3x8x8\nc = relu\nd = relu\noutput a=c, a=d\n", [("E141", 4, 15), ("W002", 3, 1)]),
    ('input x: 3x8x8\nc = relu\noutput "0"=d\n', [("E150", 3, 12), ("W002", 2, 1)]),
])
def test_output_name_mistakes_are_located(text, expected):
    try:
        diagnostics = cnnspec.loads(text).diagnostics
    except cnnspec.SpecError as error:
        diagnostics = error.diagnostics
    assert sorted((d.code, d.span.line, d.span.column) for d in diagnostics) == sorted(expected)
