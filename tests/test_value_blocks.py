"""Blocks over several values (`block fuse(c, hi, lo) -> (h2, l2)`, `(h, l) = fuse(8, a, b)`):
shapes, parameters, MACs and state_dict keys against a hand-written PyTorch computation,
onnxruntime and the emitted source against PyTorch, receptive fields and activations against the
gradient oracle, the printer's round trip, and the located diagnostics of calls that pass or bind
the wrong things."""

import json

import pytest
from conftest import TESTS

import cnnspec
from cnnspec.frontend.formatter import format_text
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec

SPEC = TESTS / "data" / "two_streams.cnn"


def fuse_reference(w, prefix, hi, lo):
    """One call of the spec's `fuse`, its layers' weights under `prefix`, with torch.nn.functional."""
    import torch.nn.functional as F

    up = F.interpolate(F.conv2d(lo, w[f"{prefix}.0.weight"], w[f"{prefix}.0.bias"]), scale_factor=2.0)
    down = F.conv2d(hi, w[f"{prefix}.2.weight"], stride=2, padding=1)
    down = F.batch_norm(down, w[f"{prefix}.3.running_mean"], w[f"{prefix}.3.running_var"],
                        w[f"{prefix}.3.weight"], w[f"{prefix}.3.bias"])
    return hi + up, lo + down


def reference(w, x):
    """tests/data/two_streams.cnn written by hand with torch.nn.functional, from its state_dict."""
    import torch.nn.functional as F

    a = F.relu(F.conv2d(x, w["stem.0.weight"], w["stem.0.bias"], padding=1))
    b = F.conv2d(a, w["2.weight"], w["2.bias"], stride=2, padding=1)
    h1, l1 = fuse_reference(w, "3", a, b)
    h2, l2 = fuse_reference(w, "exchange", h1, l1)
    return {"h2": h2, "l2": l2}


def test_a_block_returning_two_streams_computes_what_pytorch_written_by_hand_computes():
    torch = pytest.importorskip("torch")
    network = cnnspec.load(SPEC)
    assert network.diagnostics == []
    model = network.to_torch(seed=0).eval()
    weights = model.state_dict()
    # each call's layers in its own scope: a position, or the call's label
    assert {k: tuple(v.shape) for k, v in weights.items() if k.endswith("weight")} == {
        "stem.0.weight": (8, 3, 3, 3), "2.weight": (8, 8, 3, 3),
        "3.0.weight": (8, 8, 1, 1), "3.2.weight": (8, 8, 3, 3), "3.3.weight": (8,),
        "exchange.0.weight": (8, 8, 1, 1), "exchange.2.weight": (8, 8, 3, 3), "exchange.3.weight": (8,)}
    with torch.no_grad():
        for name in ("3.3", "exchange.3"):
            # running statistics away from 0 and 1, so the reference's batch norm is tested
            weights[f"{name}.running_mean"].uniform_(-1, 1)
            weights[f"{name}.running_var"].uniform_(0.5, 2)
    model.load_state_dict(weights)
    assert network.params == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        expected = reference(weights, x)
    assert list(out) == ["h2", "l2"]
    for name in out:
        torch.testing.assert_close(out[name], expected[name])
    assert network.output_shapes == {name: tuple(t.shape[1:]) for name, t in out.items()}
    # MACs: each conv's weights per output times its output elements, from the tensors PyTorch made
    outputs = {"stem.0": (8, 32, 32), "2": (8, 16, 16), "3.0": (8, 16, 16), "3.2": (8, 16, 16),
               "exchange.0": (8, 16, 16), "exchange.2": (8, 16, 16)}
    assert network.macs == sum(weights[f"{k}.weight"][0].numel() * torch.Size(s).numel() for k, s in outputs.items())


def test_onnxruntime_and_the_emitted_source_agree_with_torch():
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime
    from test_torch_source import emitted_runs_as_to_torch

    spec = parse_text(SPEC.read_text(), SPEC.name)
    for fold_bn in (False, True):
        check_against_onnxruntime(spec, None, fold_bn=fold_bn)
    emitted_runs_as_to_torch(cnnspec.load(SPEC))


def test_verify_compares_both_returned_streams():
    pytest.importorskip("onnxruntime")
    from click.testing import CliRunner

    from cnnspec.cli import main

    result = CliRunner().invoke(main, ["verify", str(SPEC)])
    assert result.exit_code == 0, result.output
    assert "outputs h2 8x32x32, l2 8x16x16" in result.output and "ok" in result.output


def test_receptive_fields_and_activations_equal_the_gradient_oracle():
    pytest.importorskip("torch")
    from oracle import measure_activations
    from test_receptive_field_oracle import assert_clean, oracle

    network = cnnspec.load(SPEC)
    assert {name: figure for name, _, _, figure in network.graph.outputs} == {"h2": "5", "l2": "7"}
    assert_clean(oracle(network), measure_activations(network, network.name))


def test_printing_round_trips():
    from test_fmt import meaning

    text = SPEC.read_text()
    assert format_text(text, SPEC.name) == text
    printed = print_spec(parse_text(text, SPEC.name))
    assert meaning(printed) == meaning(text)
    one = "input x: 3x8x8\nblock pick(v) -> w {\n  w = v -> relu\n}\na = relu\npick(a)\n"
    assert print_spec(parse_text(one, "<spec>")) == one


def test_the_summary_says_which_value_feeds_which():
    network = cnnspec.load(SPEC)
    rows = {(row.path, row.kind): row.extra for row in network.rows if "reads" in row.extra or "binds" in row.extra}
    assert rows[("exchange.0", "conv")]["reads"] == ("lo",)
    assert rows[("exchange.2", "conv")]["reads"] == ("hi",)
    assert [row.extra["reads"] for row in network.rows if row.path == "exchange"] == [("hi", "up"), ("lo", "down")]


def test_a_block_returning_one_value_flows_on_with_it():
    network = cnnspec.loads("input x: 3x8x8\nblock side(c, v) -> w {\n  w = v -> conv c 1x1\n  relu\n}\n"
                            "a = maxpool 2x2\nconv 3 3x3 pad=1\nside(5, a)\nconv 2 1x1\n")
    assert network.diagnostics == []
    assert network.output_shape == (2, 4, 4)


BLOCK = "input x: 3x8x8\nblock fuse(c, hi, lo) -> (h2, l2) {\n  h2 = add(hi, lo)\n  l2 = lo -> conv c 1x1\n}\n"


def codes_at(text: str) -> list[tuple[str, int, int]]:
    try:
        diagnostics = cnnspec.loads(text).diagnostics
    except cnnspec.SpecError as error:
        diagnostics = error.diagnostics
    return [(d.code, d.span.line, d.span.column) for d in diagnostics]


@pytest.mark.parametrize("text, expected", [
    (BLOCK + "a = relu\nb = relu\n(h, l, m) = fuse(3, a, b)\n", [("E154", 8, 2)]),
    (BLOCK + "a = relu\nb = relu\nfuse(3, a, b)\n", [("E154", 8, 1)]),
    (BLOCK + "a = relu\n(h, l) = conv 3 1x1\n", [("E154", 7, 2), ("W002", 6, 1)]),
    (BLOCK + "a = relu\n(h, l) = fuse(3, a, 2)\nadd(h, l)\n", [("E155", 7, 21)]),
    (BLOCK + "a = relu\nb = relu\n(h, l) = fuse(a, a, b)\nadd(h, l)\n", [("E155", 8, 15)]),
    (BLOCK + "a = relu\n(h, l) = fuse(3, a, nothing)\nadd(h, l)\n", [("E150", 7, 21)]),
    ("input x: 3x8x8\nblock two(v) -> (p, q) {\n  p = v -> relu\n}\na = relu\n(h, l) = two(a)\nadd(h, l)\n",
     [("E156", 2, 21)]),
])
def test_mistakes_in_calls_over_values_are_located(text, expected):
    assert sorted(codes_at(text)) == sorted(expected)


def test_an_editor_pairs_each_value_read_in_a_block_with_its_parameter_and_each_return_with_its_binding():
    from cnnspec.analysis.values import value_mentions

    spec = parse_text(SPEC.read_text(), SPEC.name)
    blocks = [s for s in spec.statements if s.node == "block"]
    reads = {(m.name, m.span.line, m.span.column): m.bound_at and (m.bound_at.line, m.bound_at.column)
             for m in value_mentions(spec, blocks) if not m.binding}
    # `lo ->` in the body reads the parameter `lo`; `-> (h2, l2)` reads the body's bindings; the
    # call's arguments (`fuse(8, a, b)`, `lo=l1` of a labelled call) read the caller's values
    assert reads[("lo", 7, 8)] == (6, 19)
    assert reads[("h2", 6, 27)] == (8, 3) and reads[("l2", 6, 31)] == (10, 3)
    assert reads[("a", 16, 20)] == (14, 1) and reads[("b", 16, 23)] == (15, 1)
    assert reads[("l1", 17, 42)] == (16, 6)


def test_the_readme_example_checks_clean_with_the_shapes_and_keys_it_states():
    import re
    import textwrap

    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    (example,) = [textwrap.dedent(b) for b in re.findall(r"```cnn\n(.*?)```", readme, re.S) if "fuse(c, hi, lo)" in b]
    network = cnnspec.loads(example)
    assert network.diagnostics == []
    assert network.output_shapes == {"h2": (8, 32, 32), "l2": (8, 16, 16)}
    convs = {row.path for row in network.rows if row.kind == "conv"}
    assert {"2.0", "exchange.0"} <= convs and "(`2.0.weight`, `exchange.0.weight` below)" in readme


def test_the_summary_folds_a_call_over_values_into_a_row_of_its_block_in_every_format():
    import csv
    import io
    import json

    pytest.importorskip("torch")
    network = cnnspec.load(SPEC)
    parameters = dict(network.to_torch(seed=0).named_parameters())
    # what PyTorch holds under each call's scope, and the caller's values each call reads and binds
    expected = {call: (sum(t.numel() for k, t in parameters.items() if k.startswith(call + ".")), reads, binds)
                for call, reads, binds in (("3", ["a", "b"], "h1, l1"), ("exchange", ["h1", "l1"], "h2, l2"))}
    layers = {r["name"]: r for r in json.loads(network.summary(format="json", depth=1))["layers"]}
    for call, (params, reads, binds) in expected.items():
        assert (layers[call]["kind"], layers[call]["params"]) == ("fuse", params)
        assert (layers[call]["reads"], layers[call]["binds"]) == (reads, binds)
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(network.summary(format="csv", depth=1)))}
    assert (rows["exchange"]["kind"], rows["exchange"]["values"]) == ("fuse", "from h1, l1; as h2, l2")
    table = network.summary(depth=1).splitlines()
    assert any(line.split()[:2] == ["3", "fuse"] and line.endswith("from a, b; as h1, l1") for line in table)
    assert "| exchange | fuse | 8x16x16 | 664 |" in network.summary(format="markdown", depth=1)
    # unfolded, the rows still say what the body reads under its parameters' names
    assert [r.extra.get("reads") for r in network.rows if r.path == "exchange.0"] == [("lo",)]


def test_a_call_over_values_spread_with_a_star_gives_its_layers_the_callers_next_positions():
    """`(h1, l1) = *fuse(8, a, b)` computes what `fuse(8, a, b)` does, its layers at positions 3 to 6
    of the top level (as an ordinary block spread with `*`), and not in a scope `3` of their own."""
    torch = pytest.importorskip("torch")
    from test_torch_source import emitted_runs_as_to_torch

    spread_text = SPEC.read_text().replace("(h1, l1) = fuse(8, a, b)", "(h1, l1) = *fuse(8, a, b)")
    spread = cnnspec.loads(spread_text)
    assert spread.diagnostics == []
    scoped = cnnspec.load(SPEC).to_torch(seed=0).eval()
    model = spread.to_torch(seed=1).eval()
    renamed = {"3.0": "3", "3.2": "5", "3.3": "6"}
    keys = {}
    for key in scoped.state_dict():
        layer, _, entry = key.rpartition(".")
        keys[key] = f"{renamed.get(layer, layer)}.{entry}"
    assert sorted(model.state_dict()) == sorted(keys.values())
    model.load_state_dict({keys[k]: v for k, v in scoped.state_dict().items()})
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, out = scoped(x), model(x)
    for name in ("h2", "l2"):
        torch.testing.assert_close(out[name], expected[name])
    assert (spread.params, spread.macs) == (cnnspec.load(SPEC).params, cnnspec.load(SPEC).macs)
    # a spread call has no scope to fold into a row of its own; its layers are the top level's
    assert [r.kind for r in spread.rows if r.path in ("3", "4", "5", "6")] == ["conv", "upsample", "conv", "bn"]
    emitted_runs_as_to_torch(spread)
    spec = parse_text(spread_text, "spread.cnn")
    assert "(h1, l1) = *fuse(8, a, b)" in print_spec(spec)
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime

    check_against_onnxruntime(spec, None, fold_bn=False)


#: tests/data/two_streams.cnn with its labelled call `exchange` applied again to the values it returned
APPLIED_AGAIN = SPEC.read_text().replace("output h2, l2", "(h3, l3) = use exchange(h2, lo=l2)\noutput h3, l3")


def test_a_labelled_call_over_values_applied_again_to_other_values_shares_its_weights():
    torch = pytest.importorskip("torch")
    network = cnnspec.loads(APPLIED_AGAIN)
    assert network.diagnostics == []
    once = cnnspec.load(SPEC)
    model = network.to_torch(seed=0).eval()
    weights = model.state_dict()
    # one set of keys, the first application's; parameters once, MACs once per application
    assert list(weights) == list(once.to_torch(seed=0).state_dict())
    assert network.params == once.params == sum(p.numel() for p in model.parameters())
    exchange_macs = sum(weights[f"exchange.{k}.weight"][0].numel() * n
                        for k, n in (("0", 8 * 16 * 16), ("2", 8 * 16 * 16)))
    assert network.macs == once.macs + exchange_macs
    with torch.no_grad():
        weights["exchange.3.running_mean"].uniform_(-1, 1)
        weights["exchange.3.running_var"].uniform_(0.5, 2)
    model.load_state_dict(weights)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        first = reference(weights, x)
        h3, l3 = fuse_reference(weights, "exchange", first["h2"], first["l2"])
    assert list(out) == ["h3", "l3"]
    torch.testing.assert_close(out["h3"], h3)
    torch.testing.assert_close(out["l3"], l3)
    assert network.output_shapes == {"h3": (8, 32, 32), "l3": (8, 16, 16)}
    # the application's rows say `use exchange` and hold no parameters; folded, it is a row of `fuse`
    applied = network.rows[len(once.rows):]
    assert [r.path for r in applied] == [r.path for r in once.rows if r.path.startswith("exchange")]
    assert applied[0].extra["uses"] == "exchange" and sum(r.params for r in applied) == 0
    folded = [r for r in json.loads(network.summary(format="json", depth=1))["layers"] if r["name"] == "exchange"]
    assert [(r["kind"], r.get("uses"), r["reads"], r["binds"]) for r in folded] == [
        ("fuse", None, ["h1", "l1"], "h2, l2"), ("fuse", "exchange", ["h2", "l2"], "h3, l3")]


def test_a_call_over_values_applied_again_agrees_in_onnxruntime_the_emitted_source_and_the_printer():
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime
    from test_fmt import meaning
    from test_torch_source import emitted_runs_as_to_torch

    spec = parse_text(APPLIED_AGAIN, "again.cnn")
    for fold_bn in (False, True):
        check_against_onnxruntime(spec, None, fold_bn=fold_bn)
    emitted_runs_as_to_torch(cnnspec.loads(APPLIED_AGAIN))
    printed = print_spec(spec)
    assert "(h3, l3) = use exchange(h2, lo=l2)" in printed and meaning(printed) == meaning(APPLIED_AGAIN)
    assert format_text(APPLIED_AGAIN, "again.cnn") == APPLIED_AGAIN
    # an editor pairs the values a `use` reads with their bindings
    from cnnspec.analysis.values import value_mentions

    reads = {(m.name, m.span.line): m.bound_at.line for m in value_mentions(spec) if not m.binding}
    assert reads[("h2", 18)] == reads[("l2", 18)] == 17


AGAIN = BLOCK + "a = relu\nb = relu\n(h, l) = ex: fuse(3, a, b)\n"


@pytest.mark.parametrize("tail, expected", [
    ("(h3, l3) = use ex\nadd(h3, l3)\n", [("E120", 9, 12), ("W002", 8, 2), ("W002", 8, 5)]),
    ("use ex(h, l)\n", [("E154", 9, 1)]),
    ("(h3, l3) = use ex(h)\nadd(h3, l3)\n", [("E120", 9, 16), ("W002", 8, 5)]),
    ("(h3, l3) = use ex(h, l, a)\nadd(h3, l3)\n", [("E120", 9, 25)]),
    ("(h3, l3) = use ex(hi=h, hi=l)\nadd(h3, l3)\n", [("E120", 9, 28), ("W002", 8, 5)]),
    ("(h3, l3) = use ex(h, nothing)\nadd(h3, l3)\n", [("E150", 9, 22), ("W002", 8, 5)]),
    ("(h3, l3, m) = use ex(h, l)\nadd(h3, l3)\n", [("E154", 9, 2)]),
    ("enc: conv 3 1x1\ny = use enc(h)\nadd(y, l)\n", [("E120", 10, 5)]),
    # the block's parameter shapes follow its first call: applied to 6 channels, E153
    ("w = a -> conv 6 1x1\n(h3, l3) = use ex(w, w)\nadd(h3, l3, h, l)\n", [("E153", 10, 12)]),
])
def test_mistakes_in_applying_a_call_over_values_again_are_located(tail, expected):
    assert sorted(codes_at(AGAIN + tail)) == sorted(expected)
