"""Chains inside a merge over values (`add(hi, lo -> conv 8 1x1, upsample size=hi)`): shapes,
parameters, MACs and state_dict keys against a hand-written PyTorch computation, onnxruntime and
the emitted source against PyTorch, receptive fields and activations against the gradient oracle,
the printer's and `fmt`'s round trip, and the located diagnostics of pieces that start from no
value or read as a layer."""

import pytest

import cnnspec
from cnnspec.diagnostics import SpecError
from cnnspec.frontend.formatter import format_text
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import PrintError, print_spec

#: each merge with a chain from an operand: one resized to another value's size, one that runs on
#: over a bare layer to the next chain, a gate computed inside `scale(...)`
CHAINS = """network chains
input x: 3x16x16
hi = conv 8 3x3 pad=1
lo = hi -> maxpool 2x2
p = add(hi, lo -> conv 8 1x1, upsample size=hi)
q = concat(hi, lo -> upsample bilinear size=hi, relu, p -> conv 8 1x1 bias=false)
scale(q, p -> avgpool global, conv 24 1x1, sigmoid)
"""


def reference(w, x):
    """CHAINS written by hand with torch.nn.functional, from its state_dict."""
    import torch
    import torch.nn.functional as F

    hi = F.conv2d(x, w["0.weight"], w["0.bias"], padding=1)
    lo = F.max_pool2d(hi, 2)
    p = hi + F.interpolate(F.conv2d(lo, w["2.weight"], w["2.bias"]), size=hi.shape[2:])
    q = torch.cat([hi, F.relu(F.interpolate(lo, size=hi.shape[2:], mode="bilinear")),
                   F.conv2d(p, w["6.weight"])], dim=1)
    gate = torch.sigmoid(F.conv2d(F.adaptive_avg_pool2d(p, 1), w["8.weight"], w["8.bias"]))
    return q * gate


def test_chains_in_merges_compute_what_pytorch_written_by_hand_computes():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(CHAINS)
    assert network.diagnostics == []
    model = network.to_torch(seed=0).eval()
    weights = model.state_dict()
    # a chain's layers take the next positions of the scope, as a statement's would
    assert {k: tuple(v.shape) for k, v in weights.items()} == {
        "0.weight": (8, 3, 3, 3), "0.bias": (8,), "2.weight": (8, 8, 1, 1), "2.bias": (8,),
        "6.weight": (8, 8, 1, 1), "8.weight": (24, 8, 1, 1), "8.bias": (24,)}
    assert network.params == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(weights, x))
    assert network.output_shape == (24, 16, 16)
    # each conv's weights per output times its output elements
    outputs = {"0": 16 * 16, "2": 8 * 8, "6": 16 * 16, "8": 1}
    assert network.macs == sum(weights[f"{k}.weight"][0].numel() * weights[f"{k}.weight"].shape[0] * n
                               for k, n in outputs.items())
    # the summary says which value each chain starts from, and which values each merge joins
    reads = [(row.path, row.kind, row.extra.get("reads")) for row in network.rows if "reads" in row.extra]
    assert ("2", "conv", ("lo",)) in reads and ("4", "upsample", ("lo", "hi")) in reads
    assert [r for _, kind, r in reads if kind in ("add", "concat", "scale")] == [("hi", "lo"), ("hi", "lo", "p"),
                                                                              ("q", "p")]


def test_onnxruntime_and_the_emitted_source_agree_with_torch():
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime
    from test_torch_source import emitted_runs_as_to_torch

    check_against_onnxruntime(parse_text(CHAINS, "chains.cnn"), None, fold_bn=False)
    emitted_runs_as_to_torch(cnnspec.loads(CHAINS))


def test_receptive_fields_and_activations_equal_the_gradient_oracle():
    pytest.importorskip("torch")
    from oracle import measure_activations
    from test_receptive_field_oracle import assert_clean, oracle

    network = cnnspec.loads(CHAINS)
    assert_clean(oracle(network), measure_activations(network, network.name))


GROUPED = """input x: 3x8x8
a = conv 4 3x3 pad=1
b = a -> maxpool 2x2
add(a, b -> {
  conv 4 1x1
  relu
}, upsample 2)
"""


@pytest.mark.parametrize("text", [CHAINS, GROUPED])
def test_printing_and_formatting_round_trip(text):
    from test_fmt import meaning

    printed = print_spec(parse_text(text, "spec.cnn"))
    assert meaning(printed) == meaning(text)
    assert format_text(text, "spec.cnn") == text


def test_a_merge_without_chains_keeps_its_meaning():
    """A merge of plain values holds no chains, as before the chains were written."""
    merge = parse_text("input x: 3x8x8\na = relu\nb = relu\nconcat crop(a, b)\n", "s.cnn").statements[-1].chain[0]
    assert ([o.name for o in merge.operands], merge.chains, merge.flags) == (["a", "b"], (), ("crop",))


def test_a_value_after_a_chain_cannot_be_printed_as_one():
    spec = parse_text("input x: 3x8x8\na = relu\nb = relu\nadd(a, b -> relu)\n", "s.cnn")
    merge = spec.statements[-1].chain[0]
    swapped = merge.model_copy(update={"operands": merge.operands[::-1], "chains": merge.chains[::-1]})
    statement = spec.statements[-1].model_copy(update={"chain": (swapped,)})
    with pytest.raises(PrintError, match="after a chain"):
        print_spec(spec.model_copy(update={"statements": (*spec.statements[:-1], statement)}))


def diagnostics_of(text: str) -> list:
    try:
        return cnnspec.loads(text).diagnostics
    except SpecError as error:
        return error.diagnostics


def codes_at(text: str) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line, d.span.column) for d in diagnostics_of(text)]


HEAD = "input x: 3x8x8\na = conv 4 3x3 pad=1\nb = a -> maxpool 2x2\n"


@pytest.mark.parametrize("tail, expected", [
    # an item before any chain starts from no value
    ("add(a, conv 4 1x1, b -> upsample 2)\n", [("E001", 4, 8)]),
    # a chain runs on to the `)`: a value written after it reads as a layer
    ("add(b -> upsample 2, a)\n", [("E101", 4, 22)]),
    ("add(a, nothing -> relu)\n", [("E150", 4, 8), ("W002", 3, 1)]),
    ("add(a, b -> conv 4 1x1)\n", [("E203", 4, 1)]),
    ("add(a, b -> upsample size=later)\nlater = relu\n", [("E151", 4, 27)]),
])
def test_mistakes_in_chains_are_located(tail, expected):
    assert sorted(codes_at(HEAD + tail)) == sorted(expected)


def test_a_mismatch_names_the_chain_and_its_shape():
    (diagnostic,) = diagnostics_of(HEAD + "add(a, b -> conv 4 1x1)\n")
    assert "4x8x8, 4x4x4" in diagnostic.message
    assert [label.message for label in diagnostic.labels] == ["`a` is 4x8x8", "`b -> ...` is 4x4x4"]
