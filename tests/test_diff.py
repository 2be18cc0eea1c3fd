"""`cnnspec diff`: zoo pairs measured against the two networks' own rows and totals, identical
networks written differently, `REV:path` in a git repository, the formats (goldens for text and
Markdown, the JSON against its schema, GitHub notices) and the CI action's script.

Regenerate the goldens with `CNNSPEC_UPDATE_GOLDEN=1 pytest tests/test_diff.py` and read the diff.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS, TESTS

import cnnspec
from cnnspec.analysis.stats import describe_field
from cnnspec.cli import main
from cnnspec.diff import SCHEMA, diff, load_side, render, to_document
from cnnspec.frontend.formatter import format_text

DATA = TESTS / "data" / "diff"
GOLDEN = TESTS / "golden" / "diff"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def zoo_diff(old, new, depth=None):
    return diff(load_side(f"zoo:{old}"), load_side(f"zoo:{new}"), depth=depth)


def by_status(d, status):
    return [c for c in d.layers if c.status == status]


def scope_sum(network, scope, figure):
    """A block's figure as the sum over the network's rows inside it (independent of the folding)."""
    return sum(getattr(r, figure) for r in network.rows if scope in r.scopes)


# ---------------------------------------------------------------- zoo pairs

def test_resnet18_to_resnet34_adds_blocks_per_stage():
    old, new = cnnspec.load(SPECS / "resnet18.cnn"), cnnspec.load(SPECS / "resnet34.cnn")
    d = zoo_diff("resnet18", "resnet34")
    assert d.totals["params"].delta == new.params - old.params == 10_108_160
    assert d.totals["params"].percent == round(100 * (new.params - old.params) / old.params, 2)
    assert d.totals["macs"].delta == new.macs - old.macs
    assert d.totals["activation_bytes"].delta == new.activation_bytes - old.activation_bytes
    added = {c.new.path for c in by_status(d, "added")}
    assert added == {r.path for r in new.rows} - {r.path for r in old.rows}
    assert not by_status(d, "removed") and not by_status(d, "changed")
    blocks = {".".join(path.split(".")[:2]) for path in added}
    assert blocks == {"layer1.2", "layer2.2", "layer2.3", "layer3.2", "layer3.3", "layer3.4", "layer3.5", "layer4.2"}
    assert d.matched == {"path": len(old.rows), "position": 0}
    # downstream of the first added block only the receptive field differs, as the rows say
    new_rows, old_rows = {r.path: r for r in new.rows}, {r.path: r for r in old.rows}
    for c in by_status(d, "rf_only"):
        field = c.changes["receptive_field"]
        assert str(field.old) == describe_field(old_rows[c.name].rf)
        assert str(field.new) == describe_field(new_rows[c.name].rf)
    statuses = {(c.contract.statement, c.side, c.status) for c in d.contracts}
    assert statuses == {("expect params == 11_689_512", "old", "now fails"),
                        ("expect macs == 1_814_073_344", "old", "now fails"),
                        ("expect params == 21_797_672", "new", "newly passes"),
                        ("expect macs == 3_663_761_408", "new", "newly passes")}


def test_resnet18_to_resnet34_by_block():
    old, new = cnnspec.load(SPECS / "resnet18.cnn"), cnnspec.load(SPECS / "resnet34.cnn")
    d = zoo_diff("resnet18", "resnet34", depth=2)
    added = {c.new.path: c.new for c in by_status(d, "added")}
    assert set(added) == {"layer1.2", "layer2.2", "layer2.3", "layer3.2", "layer3.3", "layer3.4", "layer3.5",
                          "layer4.2"}
    for name, row in added.items():
        assert row.params == scope_sum(new, name, "params") and row.macs == scope_sum(new, name, "macs")
    stages = {c.name: c for c in zoo_diff("resnet18", "resnet34", depth=1).layers if c.status == "changed"}
    assert set(stages) == {"layer1", "layer2", "layer3", "layer4"}
    for name, c in stages.items():
        assert c.changes["params"].delta == scope_sum(new, name, "params") - scope_sum(old, name, "params")
    assert "~ layer3: +4.72M params (+225%)" in render(zoo_diff("resnet18", "resnet34", depth=1))


def test_vgg16_to_vgg16_bn_inserts_a_norm_after_every_conv():
    old, new = cnnspec.load(SPECS / "vgg16.cnn"), cnnspec.load(SPECS / "vgg16_bn.cnn")
    d = zoo_diff("vgg16", "vgg16_bn")
    added = by_status(d, "added")
    norms = [i for i, r in enumerate(new.rows) if r.kind == "bn"]
    assert [c.new.path for c in added] == [new.rows[i].path for i in norms]
    assert all(new.rows[i - 1].kind == "conv" for i in norms)
    assert len(added) == sum(r.kind == "conv" for r in old.rows) == 13
    assert d.totals["params"].delta == sum(r.params for r in new.rows if r.kind == "bn") == new.params - old.params
    # the layers after the first norm moved: paired in order, each keeping its kind and figures
    moved = by_status(d, "changed")
    assert {tuple(c.changes) for c in moved} == {("name",)} and all(c.matched_by == "position" for c in moved)
    kept = [r for r in new.rows if r.kind != "bn"]
    assert [(c.old.path, c.new.path) for c in moved] == [(o.path, n.path) for o, n in zip(old.rows, kept)
                                                          if o.path != n.path]
    assert d.matched == {"path": len(old.rows) - len(moved), "position": len(moved)}


def test_resnet50_to_wide_resnet50_2_changes_widths_under_the_same_keys():
    old, new = cnnspec.load(SPECS / "resnet50.cnn"), cnnspec.load(SPECS / "wide_resnet50_2.cnn")
    d = zoo_diff("resnet50", "wide_resnet50_2")
    assert not by_status(d, "added") and not by_status(d, "removed")
    assert d.matched == {"path": len(old.rows), "position": 0}
    old_rows, new_rows = {r.path: r for r in old.rows}, {r.path: r for r in new.rows}
    changed = by_status(d, "changed")
    assert {c.name for c in changed} == {p for p in new_rows if (new_rows[p].params, new_rows[p].out_shape)
                                         != (old_rows[p].params, old_rows[p].out_shape)}
    for c in changed:
        o, n = old_rows[c.name], new_rows[c.name]
        if "params" in c.changes:
            assert c.changes["params"].delta == n.params - o.params
        if "macs" in c.changes:
            assert c.changes["macs"].delta == n.macs - o.macs
        # the bottleneck's width doubles: `out` of conv1 and conv2 is the only option that changes
        assert set(c.options) <= {"out"}
        if c.options:
            assert c.options["out"].new == 2 * c.options["out"].old and c.name.endswith(("conv1", "conv2"))
    assert d.totals["params"].delta == new.params - old.params == 43_326_208


# ---------------------------------------------------------------- written differently, the same network

@pytest.mark.parametrize(("zoo", "copy"), [("vgg16", "vgg16_messy.cnn"), ("resnet18", "resnet18_inlined.cnn"),
                                           ("vgg16_bn", "vgg16_bn_inlined.cnn")])
def test_the_same_network_written_differently_diffs_as_identical(zoo, copy):
    assert (DATA / copy).read_text() != (SPECS / f"{zoo}.cnn").read_text()
    for depth in (None, 1, 2):
        d = diff(load_side(f"zoo:{zoo}"), load_side(str(DATA / copy)), depth=depth)
        assert d.identical and not d.layers and d.matched["position"] == 0
    result = run("diff", f"zoo:{zoo}", DATA / copy)
    assert result.exit_code == 0 and result.output.rstrip().endswith("no differences")


def test_a_formatted_copy_diffs_as_identical(tmp_path):
    text = (DATA / "vgg16_messy.cnn").read_text()
    formatted = tmp_path / "vgg16.cnn"
    formatted.write_text(format_text(text, "vgg16.cnn"))
    assert formatted.read_text() != text
    assert run("diff", DATA / "vgg16_messy.cnn", formatted).exit_code == 0


def spec_side(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return load_side(str(tmp_path / name))


def test_a_kind_changed_in_place_and_a_new_input(tmp_path):
    old = spec_side(tmp_path, "old.cnn", "input x: 3x32x32\nconv 8 3x3\nrelu\nflatten\nlinear 10\n")
    new = spec_side(tmp_path, "new.cnn", "input x: 3x64x64\nconv 8 3x3\ngelu\nflatten\nlinear 10\n")
    d = diff(old, new)
    changed = {c.name: c for c in by_status(d, "changed")}
    assert changed["1"].changes["kind"].old == "relu" and changed["1"].changes["kind"].new == "gelu"
    assert changed["1"].matched_by == "path" and d.matched == {"path": 4, "position": 0}
    assert (d.input.old, d.input.new) == ((3, 32, 32), (3, 64, 64)) and d.output is None
    # the linear layer's input grew four times: its weights and MACs with it
    o, n = old.network.rows[-1], new.network.rows[-1]
    assert changed["3"].changes["params"].delta == n.params - o.params == 10 * 8 * (62 * 62 - 30 * 30)


REWIRED = """input x: 3x32x32
c1 = conv 8 3x3 pad=1
c2 = conv 8 3x3 pad=1
head = c1 -> avgpool global, flatten, linear 10
output head
"""


def test_a_layer_fed_from_another_value_is_a_change(tmp_path, validator):
    """The same layers with the same figures, the head reading `c2` instead of `c1`: another
    network, which the diff must not call identical."""
    old = spec_side(tmp_path, "old.cnn", REWIRED)
    new = spec_side(tmp_path, "new.cnn", REWIRED.replace("head = c1 ->", "head = c2 ->"))
    d = diff(old, new)
    assert not d.identical
    (change,) = by_status(d, "changed")
    assert change.name == "2" and change.changes["values"].old == "from c1" and change.changes["values"].new == "from c2"
    assert "values: from c1 -> from c2" in render(d)
    document = to_document(d)
    validator.validate(document)
    assert document["layers"][0]["changes"] == {"values": {"old": "from c1", "new": "from c2"}}
    # bound under another name, read the same: a change of the binding alone
    renamed = spec_side(tmp_path, "renamed.cnn", REWIRED.replace("c2 = conv", "other = conv"))
    (change,) = by_status(diff(old, renamed), "changed")
    assert change.changes["values"].old == "as c2" and change.changes["values"].new == "as other"


def test_the_declared_outputs_are_compared_by_name_order_and_shape(tmp_path, validator):
    head = "input x: 3x32x32\nc1 = conv 8 3x3 pad=1\np2 = c1 -> conv 4 1x1\n"
    both = spec_side(tmp_path, "both.cnn", head + "output c1, p2\n")
    for name, tail, expected in (("one", "output p2\n", {"p2": [4, 32, 32]}),
                                 ("swapped", "output p2, c1\n", {"p2": [4, 32, 32], "c1": [8, 32, 32]}),
                                 ("renamed", 'output "0"=c1, p2\n', {"0": [8, 32, 32], "p2": [4, 32, 32]}),
                                 ("none", "", {"output": [4, 32, 32]})):
        d = diff(both, spec_side(tmp_path, f"{name}.cnn", head + tail))
        assert not d.identical and d.output is None, name
        document = to_document(d)
        validator.validate(document)
        assert document["outputs"] == {"old": {"c1": [8, 32, 32], "p2": [4, 32, 32]}, "new": expected}, name
        assert "outputs: c1 8x32x32, p2 4x32x32 -> " in render(d)
    assert diff(both, spec_side(tmp_path, "same.cnn", head + "output c1, p2\n")).identical
    # several inputs, one of them resized: the second's shape is a difference too
    two = "input a: 3x32x32\ninput b: 1x{}x{}\nf = conv 4 1x1\ng = b -> conv 4 1x1\nout = add(f, g)\n"
    d = diff(spec_side(tmp_path, "two.cnn", two.format(32, 32)), spec_side(tmp_path, "wide.cnn", two.format(1, 1)))
    assert d.input is None and "inputs: a 3x32x32, b 1x32x32 -> a 3x32x32, b 1x1x1" in render(d)
    validator.validate(document := to_document(d))
    assert document["inputs"] == {"old": {"a": [3, 32, 32], "b": [1, 32, 32]}, "new": {"a": [3, 32, 32], "b": [1, 1, 1]}}


def test_large_alignments_fall_back_to_equal_runs(monkeypatch):
    import cnnspec.diff as module

    monkeypatch.setattr(module, "MAX_ALIGNMENT_CELLS", 0)
    old, new = cnnspec.load(SPECS / "vgg16.cnn"), cnnspec.load(SPECS / "vgg16_bn.cnn")
    d = zoo_diff("vgg16", "vgg16_bn")
    assert d.totals["params"].delta == new.params - old.params
    paired = [c for c in d.layers if c.old is not None and c.new is not None]
    assert all(c.old.path == c.new.path or c.old.kind == c.new.kind for c in paired)
    added = sum(c.status == "added" for c in d.layers)
    removed = sum(c.status == "removed" for c in d.layers)
    assert len(old.rows) - removed + added == len(new.rows)


# ---------------------------------------------------------------- git revisions

def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True,
                   capture_output=True)


BLOCKS = "block unit(c) {\n  conv c 3x3 pad=1\n  relu\n}\n"
NET = 'network net\ninput x: 3x32x32\nimport "common/blocks.cnn"\nstem: unit(16)\nbody: unit(32)\nflatten\nfc: linear 10\n'


#: the spec with one more block call, as the second commit has it
NET_EXTRA = NET.replace("flatten\n", "extra: unit(32)\nflatten\n")


def base_commit(repo: Path) -> None:
    """A repository on `main` whose one commit holds specs/net.cnn and the file it imports."""
    (repo / "specs" / "common").mkdir(parents=True)
    (repo / "specs" / "common" / "blocks.cnn").write_text(BLOCKS)
    (repo / "specs" / "net.cnn").write_text(NET)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """Two commits: the second widens the imported block's conv and adds a layer to the spec."""
    base_commit(tmp_path)
    old = tmp_path.parent / f"{tmp_path.name}-old"
    shutil.copytree(tmp_path / "specs", old)
    (tmp_path / "specs" / "common" / "blocks.cnn").write_text(BLOCKS.replace("conv c 3x3", "conv c 5x5 pad=2")
                                                              .replace(" pad=1", ""))
    (tmp_path / "specs" / "net.cnn").write_text(NET_EXTRA)
    git(tmp_path, "commit", "-q", "-am", "second")
    monkeypatch.chdir(tmp_path)
    return tmp_path, old


@needs_git
def test_a_revision_reads_its_imports_at_that_revision(repo):
    root, old_copy = repo
    before, after = cnnspec.load(old_copy / "net.cnn"), cnnspec.load(root / "specs" / "net.cnn")
    d = diff(load_side("HEAD~1:specs/net.cnn"), load_side("specs/net.cnn"))
    assert d.totals["params"].delta == after.params - before.params
    assert d.totals["macs"].delta == after.macs - before.macs
    # the widened kernels come from the imported file as it was at HEAD~1
    changed = {c.name: c for c in by_status(d, "changed")}
    assert changed["stem.0"].options["kernel"].old == (3, 3) and changed["stem.0"].options["kernel"].new == (5, 5)
    assert {c.new.path for c in by_status(d, "added")} == {"extra.0", "extra.1"}
    assert diff(load_side("HEAD:specs/net.cnn"), load_side("specs/net.cnn")).identical
    assert run("diff", "HEAD~1:specs/net.cnn", "HEAD:specs/net.cnn").exit_code == 1
    assert run("diff", "HEAD:./specs/net.cnn", "specs/net.cnn").exit_code == 0


@needs_git
def test_revision_errors_are_usage_errors_and_a_broken_side_shows_its_diagnostics(repo):
    result = run("diff", "nosuch:specs/net.cnn", "specs/net.cnn")
    assert result.exit_code == 2 and "error: git show failed" in result.output
    for revision in ("-c", ""):
        result = run("diff", "--", f"{revision}:specs/net.cnn", "specs/net.cnn")
        assert result.exit_code == 2 and "does not name a revision" in result.output
    result = run("diff", "HEAD~1:specs/common/blocks.cnn", "specs/net.cnn")
    assert result.exit_code == 1 and "E140" in result.output and "Traceback" not in result.output


def test_outside_a_repository_a_revision_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if shutil.which("git") is not None:
        subprocess.run(["git", "rev-parse"], cwd=tmp_path, capture_output=True)
    result = run("diff", "HEAD:net.cnn", "zoo:lenet5")
    assert result.exit_code == 2 and result.output.startswith("error: ")


def test_exit_status_and_a_side_that_does_not_check(tmp_path):
    broken = tmp_path / "broken.cnn"
    broken.write_text((SPECS / "vgg16.cnn").read_text().replace("== 138_357_544", "== 1"))
    result = run("diff", "zoo:vgg16", broken)
    assert result.exit_code == 1 and "E402" in result.output
    assert run("diff", "zoo:vgg16", "zoo:vgg16").exit_code == 0
    assert run("diff", "zoo:vgg16", "zoo:vgg19").exit_code == 1
    assert run("diff", "zoo:vgg16", "zoo:vgg19", "--format", "yaml").exit_code == 2
    assert run("diff", "zoo:vgg16").exit_code == 2


# ---------------------------------------------------------------- formats

PAIRS = [("resnet18", "resnet34", None, "text"), ("resnet18", "resnet34", None, "markdown"),
         ("vgg16", "vgg16_bn", None, "text"), ("vgg16", "vgg16_bn", None, "markdown"),
         ("resnet50", "wide_resnet50_2", 1, "text"), ("resnet50", "wide_resnet50_2", 2, "markdown")]


@pytest.mark.parametrize(("old", "new", "depth", "fmt"), PAIRS)
def test_golden(old, new, depth, fmt):
    args = ["diff", f"zoo:{old}", f"zoo:{new}", "--format", fmt] + (["--depth", depth] if depth else [])
    result = run(*args)
    assert result.exit_code == 1
    name = f"{old}__{new}" + (f"__depth{depth}" if depth else "") + (".md" if fmt == "markdown" else ".txt")
    if os.environ.get("CNNSPEC_UPDATE_GOLDEN"):
        (GOLDEN / name).write_text(result.output)
    assert result.output == (GOLDEN / name).read_text()
    assert "\x1b[" not in result.output


def test_markdown_is_a_headline_then_a_collapsed_table():
    text = render(zoo_diff("vgg16", "vgg16_bn"), "markdown")
    first, rest = text.split("\n", 1)
    assert first.startswith("**cnnspec diff** `zoo:vgg16` → `zoo:vgg16_bn`: params 138.36M -> 138.37M (+8.45k, +0.01%)")
    assert "<details><summary>43 layer changes" in rest and rest.rstrip().endswith("</details>")
    rows = [line for line in rest.splitlines() if line.startswith("| + |")]
    assert len(rows) == 13


def test_colour_only_when_asked():
    d = zoo_diff("vgg16", "vgg16_bn")
    assert "\x1b[32m+ features.1" in render(d, "text", color=True)
    assert "\x1b[" not in render(d, "text")


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(("old", "new", "depth"), [("resnet18", "resnet34", None), ("vgg16", "vgg16_bn", None),
                                                   ("resnet50", "wide_resnet50_2", 1), ("vgg16", "vgg16", None),
                                                   ("unet", "autoencoder", None)])
def test_json_follows_the_schema(validator, old, new, depth):
    result = run("diff", f"zoo:{old}", f"zoo:{new}", "--format", "json", *(["--depth", depth] if depth else []))
    document = json.loads(result.output)
    validator.validate(document)
    assert result.exit_code == (0 if document["identical"] else 1)
    o, n = cnnspec.load(f"zoo:{old}"), cnnspec.load(f"zoo:{new}")
    for key in ("params", "macs", "buffers", "activation_bytes"):
        figure = document["totals"][key]
        assert (figure["old"], figure["new"], figure["delta"]) == (getattr(o, key), getattr(n, key),
                                                                   getattr(n, key) - getattr(o, key))
    assert document["old"]["output"] == list(o.output_shape) and document["new"]["input"] == list(n.input_shape)
    assert (document["output"] is None) == (o.output_shape == n.output_shape)


def test_json_names_each_change_with_its_place_in_new():
    document = to_document(zoo_diff("resnet18", "resnet34"))
    spec = (SPECS / "resnet34.cnn").read_text().splitlines()
    for layer in document["layers"]:
        if layer["status"] == "added":
            # a block's layers are placed at its call in the spec, the line of their stage
            stage = layer["name"].split(".")[0]
            assert layer["file"] == "specs/resnet34.cnn" or layer["file"].endswith("resnet34.cnn")
            assert spec[layer["line"] - 1].startswith(f"{stage}:")


def test_github_notices_sit_on_the_changed_lines_of_new(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = run("diff", "specs/resnet18.cnn", "specs/resnet34.cnn", "--format", "github")
    assert result.exit_code == 1
    notices = re.findall(r"^::notice file=([^,]+),line=(\d+),title=cnnspec diff::(.*)$", result.output, re.M)
    assert len(notices) == len(result.output.strip().splitlines())
    spec = (SPECS / "resnet34.cnn").read_text().splitlines()
    lines = {int(line) for file, line, _ in notices if file == "specs/resnet34.cnn"}
    assert lines == {1} | {i + 1 for i, text in enumerate(spec) if text.startswith(("layer1:", "layer2:", "layer3:",
                                                                                     "layer4:"))}
    assert "+10.11M, +86.5%25" in notices[0][2]
    assert run("diff", "specs/resnet18.cnn", "specs/resnet18.cnn", "--format", "github").output == ""


# ---------------------------------------------------------------- check --format json

def test_check_json_carries_each_clean_files_totals():
    result = run("check", "--format", "json", SPECS / "resnet50.cnn", SPECS / "common" / "resnet.cnn",
                 TESTS / "golden" / "e201_residual_mismatch.cnn")
    network, library, broken = json.loads(result.output)
    expected = cnnspec.load(SPECS / "resnet50.cnn")
    assert network["totals"] == {"network": "resnet50", "input": [3, 224, 224], "output": [1000],
                                 "params": expected.params, "trainable": expected.trainable,
                                 "buffers": expected.buffers, "macs": expected.macs,
                                 "activation_bytes": expected.activation_bytes,
                                 "receptive_field": expected.receptive_field}
    assert library["totals"] is None and broken["totals"] is None and broken["diagnostics"]


# ---------------------------------------------------------------- the CI action

ACTION = ROOT / ".github" / "cnnspec-action.sh"


@pytest.mark.slow
@needs_git
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_action_checks_and_diffs_a_pull_request(tmp_path):
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]
    assert any("cnnspec-action.sh" in step.get("run", "") for step in steps)
    repo = tmp_path / "repo"
    base_commit(repo)
    # the pull request's base branch as `actions/checkout` leaves it: a remote-tracking branch
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "specs" / "net.cnn").write_text(NET_EXTRA)
    (repo / "specs" / "common" / "blocks.cnn").write_text(BLOCKS.replace("relu", "gelu"))
    (repo / "specs" / "new.cnn").write_text("input x: 1x8x8\nconv 4 3x3 pad=1 bias=false\nflatten\nlinear 2\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "head")
    # `cnnspec` on PATH is this interpreter's, as the action's pip install would give
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cnnspec").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cnnspec "$@"\n')
    (bin_dir / "cnnspec").chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_BASE_REF": "main",
           "GITHUB_STEP_SUMMARY": str(summary), "CNNSPEC_PATHS": "specs"}
    done = subprocess.run(["bash", str(ACTION)], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = summary.read_text()
    before = cnnspec.loads(NET, path="net.cnn", root=_folder(tmp_path / "base", BLOCKS))
    after = cnnspec.load(repo / "specs" / "net.cnn")
    delta = after.params - before.params
    assert "**cnnspec diff** `origin/main:specs/net.cnn` → `specs/net.cnn`: params" in text
    assert f"| params | {before.params:,} | {after.params:,} | +{delta:,} (" in text
    assert "`specs/new.cnn`: a new spec" in text
    assert "`specs/common/blocks.cnn`: not compared" in text
    line = NET_EXTRA.splitlines().index("extra: unit(32)") + 1
    assert re.search(rf"^::notice file=specs/net.cnn,line={line},title=cnnspec diff::added extra\.0 ", done.stdout, re.M)
    # the check step's annotations: a clean tree has none, a broken spec fails the step
    assert "::error" not in done.stdout
    (repo / "specs" / "net.cnn").write_text(NET.replace("linear 10", "linear 0"))
    failed = subprocess.run(["bash", str(ACTION)], cwd=repo, env={**env, "GITHUB_BASE_REF": ""},
                            capture_output=True, text=True)
    assert failed.returncode == 1 and re.search(r"^::error file=specs/net.cnn,line=7,", failed.stdout, re.M)


def _folder(path: Path, blocks: str) -> Path:
    (path / "common").mkdir(parents=True)
    (path / "common" / "blocks.cnn").write_text(blocks)
    return path
