"""A lint-only install: where torch, onnx, onnxruntime, numpy or safetensors cannot be imported,
every command and API call that needs them says so in one line, naming the packages and the
extra that brings them (exit 2), and everything else still works.

Each case runs in a subprocess whose `sys.meta_path` refuses the packages before anything
imports them, as an environment without them would."""

import re
import subprocess
import sys
import tomllib

import pytest
from conftest import ROOT, SPECS

from cnnspec.backends.extras import EXTRAS, NEEDS

HEAVY = ("torch", "onnx", "onnxruntime", "numpy", "safetensors")

BLOCKER = """
import sys

BLOCKED = set(sys.argv[1].split(","))


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""

CLI = BLOCKER + """
from cnnspec.console import console_entry

sys.argv = ["cnnspec", *sys.argv[2:]]
console_entry()
"""

API = BLOCKER + """
import cnnspec
from cnnspec.backends.extras import MissingExtraError

network = cnnspec.load(sys.argv[2])
try:
    getattr(network, sys.argv[3])()
except MissingExtraError as error:
    assert isinstance(error, ImportError)
    print(error)
"""


def cnnspec_without(blocked, *args, cwd=None):
    return subprocess.run([sys.executable, "-c", CLI, ",".join(blocked), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


LENET = SPECS / "lenet5.cnn"


@pytest.mark.parametrize("command, message", [
    (["export", LENET, "-o", "out.onnx"], '`cnnspec export` needs numpy and onnx, which are not installed: '
                                          'pip install "cnnspec[onnx]"'),
    (["export", LENET, "--int8", "--calibrate", LENET, "-o", "out.onnx"],
     '`cnnspec export --int8` needs numpy, onnx and onnxruntime, which are not installed: pip install "cnnspec[onnx]"'),
    (["run", LENET], '`cnnspec run` needs numpy, onnx and onnxruntime, which are not installed: '
                     'pip install "cnnspec[onnx]"'),
    (["run", "model.onnx"], '`cnnspec run` needs numpy, onnx and onnxruntime, which are not installed: '
                            'pip install "cnnspec[onnx]"'),
    (["verify", LENET], '`cnnspec verify` needs numpy, torch, onnx and onnxruntime, which are not installed: '
                        'pip install "cnnspec[onnx,torch]"'),
])
def test_each_backend_command_names_the_missing_packages_and_extra(tmp_path, command, message):
    result = cnnspec_without(HEAVY, *command, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: {message}\n"
    assert result.stdout == "" and not (tmp_path / "out.onnx").exists()


@pytest.mark.slow
def test_only_what_is_missing_is_named(tmp_path):
    result = cnnspec_without(["onnxruntime"], "run", LENET)
    assert (result.returncode, result.stderr) == (2, 'error: `cnnspec run` needs onnxruntime, which is not '
                                                     'installed: pip install "cnnspec[onnx]"\n')
    result = cnnspec_without(["torch"], "verify", LENET)
    assert result.stderr == 'error: `cnnspec verify` needs torch, which is not installed: pip install "cnnspec[torch]"\n'


@pytest.mark.parametrize("suffix, missing, extra", [(".safetensors", "safetensors", "all"), (".pt", "torch", "torch")])
def test_a_weights_format_names_its_reader(tmp_path, suffix, missing, extra):
    weights = tmp_path / f"w{suffix}"
    weights.write_bytes(b"")
    result = cnnspec_without([missing], "export", LENET, "-o", tmp_path / "m.onnx", "--weights", weights)
    assert result.returncode == 2
    assert result.stderr == (f"error: `cnnspec export` needs {missing}, which is not installed: "
                             f'pip install "cnnspec[{extra}]"\n')


def test_checking_summarising_and_emitting_need_none_of_them(tmp_path):
    for command in (["check", LENET], ["summary", LENET], ["emit", "torch", SPECS / "convnext_tiny.cnn"]):
        result = cnnspec_without(HEAVY, *command)
        assert result.returncode == 0, result.stderr
    emitted = cnnspec_without(HEAVY, "emit", "torch", SPECS / "convnext_tiny.cnn").stdout
    assert "class ChannelLayerNorm(nn.LayerNorm):" in emitted  # a helper copied without importing torch


@pytest.mark.parametrize("method, message", [
    ("to_torch", '`to_torch()` needs torch, which is not installed: pip install "cnnspec[torch]"'),
    ("to_onnx", '`to_onnx()` needs numpy and onnx, which are not installed: pip install "cnnspec[onnx]"'),
])
def test_the_api_raises_an_import_error_with_the_same_line(method, message):
    result = subprocess.run([sys.executable, "-c", API, ",".join(HEAVY), str(LENET), method], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == message + "\n"


def test_extras_are_pyproject_s():
    """`EXTRAS` lists, for each extra, the packages pyproject.toml's extra brings (nested extras
    expanded) that cnnspec imports."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def packages(extra):
        found = set()
        for requirement in table[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+(\[[^]]*\])?", requirement)
            if name.group(1) and name.group(0).startswith("cnnspec"):
                for nested in name.group(1).strip("[]").split(","):
                    found |= packages(nested)
            else:
                found.add(name.group(0).split("[")[0])
        return found

    for extra, listed in EXTRAS.items():
        assert set(listed) == packages(extra) & set(HEAVY), extra
    assert {package for needs in NEEDS.values() for package in needs} <= set(HEAVY)


@pytest.mark.slow
def test_run_image_without_pillow_names_the_images_extra(tmp_path):
    model = tmp_path / "lenet5.onnx"
    assert cnnspec_without((), "export", LENET, "-o", model).returncode == 0
    (tmp_path / "picture.png").write_bytes(b"")
    result = cnnspec_without(("PIL",), "run", model, "--image", tmp_path / "picture.png")
    assert result.returncode == 2, result.stderr
    assert result.stderr == 'error: Pillow is not installed: pip install "cnnspec[images]"\n'
