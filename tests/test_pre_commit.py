"""`.pre-commit-hooks.yaml`: valid for pre-commit, and each hook's command does its job on the files it selects."""

import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

HOOKS = ROOT / ".pre-commit-hooks.yaml"
CLEAN = "input x: 3x32x32\nconv 16 3x3 pad=1 bias=false\nbn\nrelu\n"
MESSY = "input x: 3x32x32\nconv 16 3x3 pad=1 bias=false;bn ;relu\n"
BROKEN = "input x: 3x32x32\nconv 16 3x3 pad=1\nlinear 10\n"


def hooks() -> dict:
    clientlib = pytest.importorskip("pre_commit.clientlib", reason="pre-commit (dev extra) validates the manifest")
    load_manifest = clientlib.load_manifest

    return {hook["id"]: hook for hook in load_manifest(HOOKS)}


def run_hook(hook: dict, folder, names: list[str]) -> subprocess.CompletedProcess:
    """What pre-commit runs: the entry, the hook's args, then the staged files its pattern selects."""
    selected = [name for name in names if re.search(hook["files"], name)]
    command = shlex.split(hook["entry"]) + hook["args"] + selected
    # the console script of the environment running the tests
    command[0:1] = [sys.executable, "-m", "cnnspec"]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True)


def test_the_manifest_is_valid_and_offers_check_fmt_and_fmt_check():
    found = hooks()
    assert set(found) == {"cnnspec-check", "cnnspec-fmt", "cnnspec-fmt-check"}
    assert all(hook["language"] == "python" for hook in found.values())


@pytest.mark.slow
def test_the_hooks_pass_clean_specs_and_fail_the_rest(tmp_path):
    found = hooks()
    (tmp_path / "clean.cnn").write_text(CLEAN)
    (tmp_path / "messy.cnn").write_text(MESSY)
    (tmp_path / "broken.cnn").write_text(BROKEN)
    (tmp_path / "README.md").write_text("not a spec")

    assert run_hook(found["cnnspec-check"], tmp_path, ["clean.cnn", "README.md"]).returncode == 0
    failed = run_hook(found["cnnspec-check"], tmp_path, ["clean.cnn", "broken.cnn"])
    assert failed.returncode == 1 and "error[E214]" in failed.stderr

    assert run_hook(found["cnnspec-fmt-check"], tmp_path, ["clean.cnn"]).returncode == 0
    assert run_hook(found["cnnspec-fmt-check"], tmp_path, ["messy.cnn"]).returncode == 1
    assert (tmp_path / "messy.cnn").read_text() == MESSY

    # the rewriting hook changes the file, which pre-commit reports as a failure of its own
    assert run_hook(found["cnnspec-fmt"], tmp_path, ["messy.cnn", "README.md"]).returncode == 0
    assert (tmp_path / "messy.cnn").read_text() == "input x: 3x32x32\nconv 16 3x3 pad=1 bias=false; bn; relu\n"
    assert run_hook(found["cnnspec-fmt-check"], tmp_path, ["messy.cnn"]).returncode == 0
