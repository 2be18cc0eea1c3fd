"""The command line as a user meets it: exit codes, formats, overrides, no tracebacks."""

import csv
import io
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import SPECS, TESTS

from cnnspec.cli import main

GOLDEN = TESTS / "golden"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_check_clean_specs_exit_zero():
    result = run("check", *sorted(SPECS.glob("*.cnn")))
    assert result.exit_code == 0, result.output
    assert "resnet50.cnn: ok (25,557,032 params" in result.output


def test_check_errors_exit_one_and_show_every_error_sorted():
    result = run("check", GOLDEN / "e120_block_arguments.cnn")
    assert result.exit_code == 1
    assert result.output.index(":5:14") < result.output.index(":6:11")
    assert "Traceback" not in result.output


def test_warnings_fail_only_with_strict():
    spec = GOLDEN / "w001_same_even_kernel.cnn"
    assert run("check", spec).exit_code == 0
    assert run("check", "--strict", spec).exit_code == 1


def test_check_json_carries_the_diagnostic_fields():
    result = run("check", "--format", "json", GOLDEN / "e201_residual_mismatch.cnn")
    assert result.exit_code == 1
    (report,) = json.loads(result.output)
    (diagnostic,) = report["diagnostics"]
    assert diagnostic["code"] == "E201" and diagnostic["severity"] == "error"
    assert diagnostic["span"]["line"] == 3 and diagnostic["span"]["column"] == 1
    assert diagnostic["help"].startswith("add a projection shortcut")


def test_usage_errors_exit_two():
    assert run("check").exit_code == 2
    assert run("summary", SPECS / "lenet5.cnn", "--input", "3by32").exit_code == 2
    assert run("summary", SPECS / "lenet5.cnn", "--format", "yaml").exit_code == 2


def test_missing_file_is_a_diagnostic_not_a_traceback():
    result = run("check", "no/such/file.cnn")
    assert result.exit_code == 1
    assert "E132" in result.output and "Traceback" not in result.output


def test_summary_formats_agree():
    table = run("summary", SPECS / "resnet18.cnn").output
    assert "11,689,512" in table and "1,814,073,344" in table
    markdown = run("summary", SPECS / "resnet18.cnn", "--format", "markdown").output
    assert "| layer1.0.conv1 | conv | 64x56x56 | 36,864 |" in markdown
    rows = list(csv.DictReader(io.StringIO(run("summary", SPECS / "resnet18.cnn", "--format", "csv").output)))
    assert sum(int(r["params"]) for r in rows) == 11_689_512
    data = json.loads(run("summary", SPECS / "resnet18.cnn", "--format", "json").output)
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"] == 1_814_073_344


def test_summary_depth_collapses_blocks():
    data = json.loads(run("summary", SPECS / "resnet50.cnn", "--format", "json", "--depth", "1").output)
    names = [layer["name"] for layer in data["layers"]]
    assert names[:4] == ["conv1", "bn1", "2", "3"]
    assert "layer1" in names and not any(n.startswith("layer1.") for n in names)
    assert sum(layer["params"] for layer in data["layers"]) == 25_557_032
    deeper = json.loads(run("summary", SPECS / "resnet50.cnn", "--format", "json", "--depth", "2").output)
    assert "layer1.0" in [layer["name"] for layer in deeper["layers"]]


def test_input_override(tmp_path):
    spec = tmp_path / "fcn.cnn"
    spec.write_text("input x: 3x224x224\nconv 8 3x3 stride=2 pad=1\navgpool global\n")
    data = json.loads(run("summary", spec, "--format", "json", "--input", "3x256x256").output)
    assert data["input"] == [3, 256, 256] and data["layers"][0]["output"] == [8, 128, 128]
    # its `expect shape 512x7x7` and `expect macs` do not apply at 256x256 and are skipped; `expect params` holds
    result = run("check", SPECS / "resnet18.cnn", "--input", "3x256x256")
    assert result.exit_code == 0 and "E401" not in result.output
    assert "note: 2 `expect` contracts on the shape, MACs or memory not checked" in result.output


def test_layers_lists_every_kind():
    from cnnspec.layers import REGISTRY

    output = run("layers").output
    assert all(f" {name}" in output for name in REGISTRY)


def test_import_and_check_stay_light():
    code = ("import sys, cnnspec\n"
            "from click.testing import CliRunner\nfrom cnnspec.cli import main\n"
            f"r = CliRunner().invoke(main, ['check', {str(SPECS / 'resnet50.cnn')!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            "heavy = {'torch', 'onnx', 'onnxruntime', 'numpy'} & set(sys.modules)\n"
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "cnnspec", "check", str(SPECS / "lenet5.cnn")],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "61,706 params" in out.stdout


def test_a_file_of_blocks_only_checks_as_a_library(tmp_path):
    result = run("check", SPECS / "common" / "resnet.cnn")
    assert result.exit_code == 0 and "ok (blocks only: basic, bottleneck, stem)" in result.output
    broken = tmp_path / "lib.cnn"
    broken.write_text('import "missing.cnn"\nblock b { relu }\nblock b { relu }\n')
    result = run("check", broken)
    assert result.exit_code == 1 and "E132" in result.output and "E123" in result.output
    # elsewhere a library is not a network
    assert run("summary", SPECS / "common" / "resnet.cnn").exit_code == 1


def test_check_takes_folders():
    result = run("check", SPECS)
    assert result.exit_code == 0
    assert result.output.count(": ok (") == len(list(SPECS.rglob("*.cnn")))


def _console(*args, code_before=""):
    """Run the console entry point in a fresh interpreter, as the `cnnspec` command does."""
    code = f"import sys\n{code_before}\nsys.argv = ['cnnspec', *{[str(a) for a in args]!r}]\n" \
           "from cnnspec.console import console_entry\nconsole_entry()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


#: at the command's exit: whether the check imported `importlib.metadata`, and what plugin loader
#: Pydantic was given (the real one has a file)
_PLUGIN_PROBE = ("import atexit\nalready = 'importlib.metadata' in sys.modules\n"
                 "atexit.register(lambda: print('metadata', already, 'importlib.metadata' in sys.modules, 'loader',"
                 " getattr(sys.modules.get('pydantic.plugin._loader'), '__file__', None) is not None))")


@pytest.mark.parametrize("setting, metadata, real_loader", [(None, False, False), ("true", False, False), ("", True, True)])
def test_with_plugins_disabled_the_check_reads_no_entry_points(monkeypatch, setting, metadata, real_loader):
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    if setting is not None:
        monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", setting)  # empty: look for plugins after all
    out = _console("check", SPECS / "resnet50.cnn", code_before=_PLUGIN_PROBE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == f"metadata False {metadata} loader {real_loader}"


#: at the command's exit: how many passes the cyclic collector made once click had begun to load,
#: and whether it is on (compiling the entry point's own small modules, where no bytecode is
#: kept, may make a pass before it has paused the collector)
_COLLECTOR_PROBE = ("import atexit, gc\npasses = []\n"
                    "gc.callbacks.append(lambda phase, info: passes.append(phase == 'start' and 'click' in sys.modules))\n"
                    "atexit.register(lambda: print('passes', sum(passes), 'enabled', gc.isenabled()))")


def test_the_entry_point_pauses_the_collector_before_anything_heavy_loads():
    light = subprocess.run([sys.executable, "-c", "import sys, cnnspec.console\n"
                            "print(sorted({'click', 'pydantic', 'lark', 'cnnspec.cli'} & set(sys.modules)))"],
                           capture_output=True, text=True)
    assert light.stdout.strip() == "[]", light.stderr
    # importing click and pydantic alone makes about fifty passes where the collector runs
    check = _console("check", SPECS / "resnet50.cnn", code_before=_COLLECTOR_PROBE)
    assert check.returncode == 0 and check.stdout.splitlines()[-1] == "passes 0 enabled False", check.stderr
    ran = _console("lsp", "--help", code_before=_COLLECTOR_PROBE)  # a command that keeps it
    assert ran.returncode == 0 and int(ran.stdout.split()[-3]) > 0 and ran.stdout.split()[-1] == "True", ran.stderr


def test_the_loader_without_plugins_has_every_name_pydantic_imports_from_it():
    import ast
    import pathlib

    import pydantic

    from cnnspec.console import PLUGIN_LOADER

    wanted = set()
    for source in pathlib.Path(pydantic.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_loader") and (
                    node.level or node.module == PLUGIN_LOADER):
                wanted |= {alias.name for alias in node.names}
    assert wanted == {"get_plugins"}, "Pydantic's plugin loader changed: `_without_plugin_discovery` must follow"


@pytest.mark.slow
def test_the_entry_point_keeps_exit_codes_and_output(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text("input x: 3x8x8\nconv 4 9x9\n")
    assert _console("check", bad).returncode == 1 and "error[E210]" in _console("check", bad).stderr
    usage = _console("check", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    # a long report reaches a pipe whole: the quick exit flushes before it leaves
    whole = _console("summary", SPECS / "densenet121.cnn", "--format", "csv")
    assert whole.returncode == 0
    assert whole.stdout == run("summary", SPECS / "densenet121.cnn", "--format", "csv").output


def test_the_entry_point_runs_atexit_handlers_and_writes_files(tmp_path):
    report = tmp_path / "report.sarif"
    out = _console("check", SPECS / "resnet50.cnn", "--format", "sarif", "-o", report,
                   code_before="import atexit; atexit.register(print, 'handler ran')")
    assert out.returncode == 0 and out.stdout.strip() == "handler ran"
    assert json.loads(report.read_text())["version"] == "2.1.0"


@pytest.mark.slow
def test_the_entry_point_exits_normally_under_a_profiler(tmp_path):
    stats = tmp_path / "check.prof"
    out = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "cnnspec", "check",
                          str(SPECS / "lenet5.cnn")], capture_output=True, text=True)
    assert out.returncode == 0 and "61,706 params" in out.stdout
    assert stats.stat().st_size > 0


class _Terminal:
    """A stream that says it is a terminal, keeping what is written."""

    def __init__(self):
        import io

        self.text = io.StringIO()

    def isatty(self):
        return True

    def write(self, text):
        return self.text.write(text)

    def flush(self):
        pass


def test_export_progress_shows_its_stages_on_a_terminal_once_a_second_has_passed():
    from cnnspec.backends.onnx_io import STAGES
    from cnnspec.cli import _StageBar

    now = [0.0]
    quick, slow = _Terminal(), _Terminal()
    with _StageBar(quick, clock=lambda: now[0]) as progress:
        for stage in STAGES:
            progress(stage)
    assert quick.text.getvalue() == ""
    with _StageBar(slow, clock=lambda: now[0]) as progress:
        progress("weights")
        now[0] = 1.5
        progress("write")
        progress("check")
    shown = slow.text.getvalue()
    assert "exporting" in shown and "write" in shown and "check" in shown and "100%" in shown


def test_export_prints_no_progress_when_not_on_a_terminal(tmp_path):
    result = CliRunner().invoke(main, ["export", "zoo:lenet5", "-o", str(tmp_path / "l.onnx")])
    assert result.exit_code == 0
    assert "exporting" not in result.output and result.output.startswith("wrote ")
