"""`cnnspec emit torch`: generated sources compile, pass ruff's default rules, import only torch,
and build the same module as `Network.to_torch()`."""

import ast
import shutil
import subprocess
import sys
import types

import pytest
from click.testing import CliRunner
from conftest import SPECS, zoo_params

import cnnspec
from cnnspec.backends.torch_source import camel
from cnnspec.cli import main

ZOO = sorted(p.stem for p in SPECS.glob("*.cnn"))


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emitted")
    for name in ZOO:
        result = CliRunner().invoke(main, ["emit", "torch", str(SPECS / f"{name}.cnn"), "-o", str(folder / f"{name}.py")])
        assert result.exit_code == 0, result.output
    return folder


def test_generated_sources_compile_and_pass_ruff(emitted):
    files = sorted(str(p) for p in emitted.glob("*.py"))
    assert len(files) == len(ZOO)
    compiled = subprocess.run([sys.executable, "-m", "py_compile", *files], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev extra)")
    checked = subprocess.run([ruff, "check", "--isolated", *files], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", ZOO)
def test_generated_sources_import_only_torch(emitted, name):
    tree = ast.parse((emitted / f"{name}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"torch", "torch.nn.functional"}, imported
    first = (emitted / f"{name}.py").read_text().splitlines()[0]
    assert f"{name}.cnn" in first


def load_module(path, class_name):
    module = types.ModuleType(path.stem)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return getattr(module, class_name)()


@pytest.mark.parametrize("name", zoo_params(ZOO))
def test_generated_module_equals_to_torch(emitted, name):
    torch = pytest.importorskip("torch")
    network = cnnspec.load(SPECS / f"{name}.cnn")
    built = network.to_torch(seed=0).eval()
    generated = load_module(emitted / f"{name}.py", camel(network.name)).eval()
    ours = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in generated.state_dict().items()} == ours
    generated.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(1, *network.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(generated(x), built(x), rtol=1e-5, atol=1e-5)


def test_emit_prints_to_stdout_and_reports_errors(tmp_path):
    result = CliRunner().invoke(main, ["emit", "torch", str(SPECS / "lenet5.cnn")])
    assert result.exit_code == 0
    assert "class Lenet5(nn.Module):" in result.output
    broken = tmp_path / "broken.cnn"
    broken.write_text("input x: 3x8x8\nconv 4 9x9\n")
    result = CliRunner().invoke(main, ["emit", "torch", str(broken)])
    assert result.exit_code == 1
    assert "E210" in result.output and "Traceback" not in result.output


def test_blocks_become_classes_with_their_parameters():
    source = cnnspec.load(SPECS / "resnet50.cnn").to_torch_source()
    assert "class Bottleneck(nn.Module):" in source
    assert "def __init__(self, c):" in source
    assert "nn.Conv2d(c, c * 4, kernel_size=1, bias=False)" in source
    assert "x = y + self.downsample(x)" in source
