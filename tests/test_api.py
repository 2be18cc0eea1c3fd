"""The Python API: load, loads, Network totals, SpecError, limits, imports, grammar."""


import pytest
from conftest import ROOT, SPECS

import cnnspec
from cnnspec.analysis.limits import Limits


def test_load_returns_totals_and_rows():
    net = cnnspec.load(SPECS / "resnet18.cnn")
    assert (net.name, net.input_shape, net.output_shape) == ("resnet18", (3, 224, 224), (1000,))
    assert (net.params, net.buffers, net.macs) == (11_689_512, 9_600, 1_814_073_344)
    assert net.trainable == net.params
    assert net.rows[0].path == "conv1"
    assert "11,689,512" in net.summary()


def test_spec_error_carries_located_diagnostics():
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.loads("input x: 3x32x32\ncnv 8 3x3\nconv 8 3x3 stride=0", path="bad.cnn")
    codes = [(d.code, d.span.line) for d in caught.value.diagnostics]
    assert codes == [("E101", 2), ("E103", 3)]
    assert "bad.cnn:2:1" in caught.value.render()


def test_frozen_literal_kernels_are_not_trainable():
    net = cnnspec.loads("input x: 1x28x28\nconv 1 3x3 weights=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] frozen bias=false")
    assert net.params == 9 and net.trainable == 0 and net.output_shape == (1, 26, 26)


def test_kernel_may_be_inferred_from_literal_weights():
    net = cnnspec.loads("input x: 1x10\nconv 1 weights=[0.25, 0.5, 0.25] frozen")
    assert net.output_shape == (1, 8)


def test_expansion_budget_refuses_huge_specs_early():
    text = "input x: 1x8x8\nblock b { relu * 100 }\nblock c { b * 100 }\nc * 100"
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.loads(text, limits=Limits(max_layers=5_000))
    assert [d.code for d in caught.value.diagnostics] == ["E124"]


def test_blocks_nest_with_defaults_conditions_and_in():
    net = cnnspec.loads("""
input x: 16x32x32
block proj(c, stride=1) {
  residual { conv c 3x3 stride=stride pad=1 } shortcut when(stride != 1 or in.c != c) { conv c 1x1 stride=stride }
}
block stage(c, n) { proj(c, stride=2); proj(c) * (n - 1) }
s1: stage(32, 3)
when (in.c == 16) { identity } else { relu }
expect shape 32x16x16
""")
    assert net.output_shape == (32, 16, 16)
    assert [r.path for r in net.rows if r.params][:3] == ["s1.0.0", "s1.0.1", "s1.1.0"]


def test_imports_resolve_relative_to_the_importing_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text("block cbr(c) { conv c 3x3 pad=1; bn; relu }\n")
    (tmp_path / "net.cnn").write_text('import "lib/blocks.cnn"\ninput x: 3x8x8\ncbr(4)\n')
    assert cnnspec.load(tmp_path / "net.cnn").params == 4 * 27 + 4 + 8


def test_imports_cannot_escape_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "blocks.cnn").write_text("block b { relu }\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.cnn").symlink_to(outside / "blocks.cnn")
    (project / "net.cnn").write_text('import "link.cnn"\ninput x: 3x8x8\nb\n')
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.load(project / "net.cnn")
    assert caught.value.diagnostics[0].code == "E130"


def test_grammar_is_conflict_free_lalr():
    from lark import Lark

    # Lark's strict mode needs interegular to find colliding terminals
    pytest.importorskip("interegular", reason="interegular (dev extra) checks the grammar's terminals")

    Lark((ROOT / "grammars" / "cnnspec.lark").read_text(), parser="lalr", strict=True)


def test_every_kind_has_a_shape_rule_and_costs():
    from cnnspec.layers import REGISTRY
    from cnnspec.layers.base import LayerKind

    for name, kind in REGISTRY.items():
        assert kind.Params.model_fields["kind"].default == name
        assert kind.summary, name
        assert kind.family, name
        assert isinstance(kind, LayerKind)


def test_a_reshape_that_changes_rank_before_a_merge_is_checked():
    """Found by the differential test: a field over input axes meeting one over reshaped axes."""
    network = cnnspec.loads("input x: 1x4x4\nreshape shape=1x16\nconcat crop {\n  identity\n  conv 1 3\n}\n")
    assert network.output_shape == (2, 14)
    # the reshape rearranges the 4x4 positions along one axis: the map counts as one position, which
    # sees the whole input (stats.py)
    assert network.receptive_field == "whole"


def test_the_project_passes_its_own_lint_rules():
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev extra)")
    result = subprocess.run([ruff, "check", "cnnspec", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_numbered_labels_name_each_copy_from_one():
    network = cnnspec.loads("input x: 4x8x8\nblock unit(c) {\n  conv c 3x3 pad=1\n}\n"
                            "stage: { layer{}: unit(4) * 3 }\nhead{}: conv 2 1x1\n")
    paths = [row.path for row in network.rows]
    assert paths == ["stage.layer1.0", "stage.layer2.0", "stage.layer3.0", "head1"]


def test_a_numbered_label_names_one_item():
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.loads("input x: 4x8x8\nlayer{}: relu, relu\n")
    assert caught.value.diagnostics[0].code == "E106"


def test_numbered_labels_may_start_elsewhere():
    network = cnnspec.loads("input x: 4x8x8\nblock{4}: relu * 2\n")
    assert [row.path for row in network.rows] == ["block4", "block5"]


def test_pytorch_only_pools_a_3d_average_over_an_input_that_holds_the_kernel():
    """Found by the differential test: avg_pool3d refuses a 2x2x2 input to a padded 3x3x3 kernel."""
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.loads("input x: 1x2x2x2\navgpool 3 pad=1\n")
    assert caught.value.diagnostics[0].code == "E210"
    assert cnnspec.loads("input x: 1x2x2\navgpool 3 pad=1\n").output_shape == (1, 1, 1)


def test_the_elaborators_graphs_satisfy_their_schema():
    """Graph nodes are built without validation (their parts are validated already); the zoo's
    graphs, and a generated spec's, validate against the schema and come back equal."""
    from cnnspec.graph import Graph

    for path in sorted(SPECS.glob("*.cnn")):
        graph = cnnspec.load(path).graph
        assert Graph.model_validate(graph.model_dump()) == graph, path.name
