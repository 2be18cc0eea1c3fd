"""`cnnspec emit torch`: generated sources compile, pass ruff's default rules, import only torch,
and build the same module as `Network.to_torch()`."""

import ast
import shutil
import subprocess
import sys
import types

import pytest
from click.testing import CliRunner
from conftest import QUICK_ZOO, SPECS, zoo_params
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.backends.torch_source import network_class_name
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


@pytest.mark.parametrize("name", zoo_params(ZOO, quick=QUICK_ZOO))
def test_generated_module_equals_to_torch(emitted, name):
    torch = pytest.importorskip("torch")
    network = cnnspec.load(SPECS / f"{name}.cnn")
    built = network.to_torch(seed=0).eval()
    generated = load_module(emitted / f"{name}.py", network_class_name(network.name)).eval()
    ours = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in generated.state_dict().items()} == ours
    generated.load_state_dict(built.state_dict(), strict=True)
    generator = torch.Generator().manual_seed(0)
    xs = [torch.randn(1, *shape, generator=generator) for shape in network.input_shapes.values()]
    with torch.no_grad():
        torch.testing.assert_close(generated(*xs), built(*xs), rtol=1e-5, atol=1e-5)


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


# ---------------------------------------------------------------- names the generated file uses

NAMED_SPEC = """network {network}
input x: 1x8x8
block {block}({param}, k=2) {{
  conv1: conv {param} 3x3 pad=1
  relu
}}
conv 1 3x3 pad=1 weights=[[[[0,1,0],[1,1,1],[0,1,0]]]] frozen
conv 4 2x2 pad=same
{block}(4)
{block}(8)
mul 0.5
chunk 2 1
reshape 4x8x8
channel_shuffle 2
concat crop {{ conv 4 1x1; conv 4 3x3 }}
ln
channels_last
ln last
channels_first
scale_: layerscale init=0.5
"""


def emitted_runs_as_to_torch(network):
    """The emitted source executes, and its module has to_torch()'s keys, shapes and outputs."""
    import torch

    namespace = {}
    exec(compile(network.to_torch_source(), f"<{network.name}>", "exec"), namespace)
    generated = namespace[network_class_name(network.name)]().eval()
    built = network.to_torch(seed=0).eval()
    assert {k: tuple(v.shape) for k, v in generated.state_dict().items()} == {
        k: tuple(v.shape) for k, v in built.state_dict().items()}
    generated.load_state_dict(built.state_dict(), strict=True)
    generator = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, *shape, generator=generator) for shape in network.input_shapes.values()]
    with torch.no_grad():
        torch.testing.assert_close(generated(*xs), built(*xs), rtol=1e-5, atol=1e-5)


def identifiers_of_generated_source() -> list[str]:
    """Every name the emitted file of a spec using each helper holds, as written and in snake case
    (`ChannelLayerNorm` and `channel_layer_norm`, which `camel` turns back into it)."""
    import io
    import re
    import tokenize

    source = cnnspec.loads(NAMED_SPEC.format(network="rich", block="blk", param="c")).to_torch_source()
    names = {t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NAME}
    snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower() for n in names}
    return sorted(names | snake | {n.lower() for n in names})


def named_network(network="net", block="blk", param="c"):
    try:
        return cnnspec.loads(NAMED_SPEC.format(network=network, block=block, param=param))
    except cnnspec.SpecError:
        return None  # a name the language itself does not take (a keyword, a layer kind)


@pytest.mark.parametrize("name", ["f", "mul", "reshape", "chunk", "none", "true", "torch", "nn"])
def test_network_named_like_what_the_file_uses_runs(name):
    # `f` once gave `class F`, hiding `torch.nn.functional as F`; `mul` two classes `Mul`
    pytest.importorskip("torch")
    network = cnnspec.loads(f"network {name}\ninput x: 3x8x8\nconv 4 2x2 pad=same\nmul 0.5\nchunk 2 1\n"
                            "reshape 2x8x8\n")
    emitted_runs_as_to_torch(network)


def test_block_parameters_named_like_modules_do_not_hide_them():
    pytest.importorskip("torch")
    network = cnnspec.loads("input x: 3x8x8\nblock b(nn, torch) {\n  c: conv nn 3x3 pad=1\n  s: layerscale\n"
                            "  conv torch 1x1\n}\nb(4, 2)\nb(6, 3)\n")
    assert "def __init__(self, nn_2, torch_2, in_channels):" in network.to_torch_source()
    emitted_runs_as_to_torch(network)


IDENTIFIERS = identifiers_of_generated_source()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(network=st.sampled_from(IDENTIFIERS), block=st.sampled_from(IDENTIFIERS),
       param=st.sampled_from(IDENTIFIERS))
def test_any_name_from_the_generated_file_emits_code_that_runs(network, block, param):
    pytest.importorskip("torch")
    built = named_network(network, block, param)
    assume(built is not None)
    emitted_runs_as_to_torch(built)
