"""`[tool.cnnspec]` in pyproject.toml: rules off, severities, limits, strictness, found as ruff finds its table."""

import textwrap

import pytest
from click.testing import CliRunner

import cnnspec
from cnnspec.cli import main
from cnnspec.config import Config, ConfigError, config_for, find_config, load_config, may_hold_the_table

#: W104 (bias before BN) and W112 (20 channels), 12,120 parameters
SPEC = "input x: 3x32x32\nconv 20 3x3 pad=1\nbn\nrelu\nconv 64 3x3 pad=1 bias=false\n"


@pytest.fixture
def project(tmp_path):
    """A project with its pyproject.toml at the top and the spec two folders down."""
    def make(table: str):
        (tmp_path / "pyproject.toml").write_text("[project]\nname = \"p\"\n\n" + textwrap.dedent(table))
        spec = tmp_path / "models" / "small" / "net.cnn"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(SPEC)
        return spec
    return make


def codes(result):
    return {line.split("[")[1].split("]")[0] for line in result.output.splitlines()
            if line.startswith(("error[", "warning["))}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_without_configuration_both_warnings_show_and_check_passes(project):
    spec = project("")
    result = invoke("check", spec)
    assert result.exit_code == 0 and codes(result) == {"W104", "W112"}


def test_ignore_switches_a_rule_off(project):
    spec = project('[tool.cnnspec]\nignore = ["W112"]\n')
    result = invoke("check", spec)
    assert result.exit_code == 0 and codes(result) == {"W104"}


def test_a_warning_raised_to_an_error_fails_the_check_and_the_api(project):
    spec = project('[tool.cnnspec.severity]\nW104 = "error"\nw112 = "off"\n')
    result = invoke("check", spec)
    assert result.exit_code == 1 and "error[W104]" in result.output and codes(result) == {"W104"}
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.load(spec, config=config_for(spec))
    assert [(d.code, d.severity) for d in caught.value.diagnostics] == [("W104", "error")]
    # the API applies no configuration unless asked
    assert {d.code for d in cnnspec.load(spec).warnings} == {"W104", "W112"}


def test_strict_in_the_table_fails_on_warnings(project):
    spec = project("[tool.cnnspec]\nstrict = true\n")
    assert invoke("check", spec).exit_code == 1
    assert invoke("check", "--isolated", spec).exit_code == 0


def test_strict_works_through_the_api(project):
    """The verdict is the library's: `load` fails on warnings under a strict configuration, and
    `check` says the file does not pass while still giving the network and its figures."""
    spec = project("[tool.cnnspec]\nstrict = true\n")
    config = config_for(spec)
    assert config.strict
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.load(spec, config=config)
    assert {(d.code, d.severity) for d in caught.value.diagnostics} == {("W104", "warning"), ("W112", "warning")}
    with pytest.raises(cnnspec.SpecError):
        cnnspec.loads(SPEC, config=Config(strict=True))
    result = cnnspec.check(spec, config=config)
    assert not result.ok and result.network.params == 12_120 and len(result.diagnostics) == 2
    assert cnnspec.check(spec).ok and not cnnspec.check(spec, strict=True).ok
    # a strict configuration with every warning switched off passes
    quiet = Config(strict=True, ignore=frozenset({"W104", "W112"}))
    assert cnnspec.loads(SPEC, config=quiet).params == 12_120
    assert cnnspec.check(spec, config=quiet).ok


def test_limits_refuse_what_the_project_calls_too_large(project):
    spec = project('[tool.cnnspec.limits]\nmax-params = "10k"\n')
    result = invoke("check", spec)
    assert result.exit_code == 1 and "E301" in codes(result)
    assert "over the limit of 10,000" in result.output
    spec = project("[tool.cnnspec.limits]\nmax-layers = 3\n")
    assert "E124" in codes(invoke("check", spec))
    assert load_config(spec.parents[2] / "pyproject.toml").limits.max_layers == 3


def test_the_nearest_table_applies_and_tables_without_it_are_skipped(project, tmp_path):
    spec = project('[tool.cnnspec]\nignore = ["W104", "W112"]\n')
    (spec.parent / "pyproject.toml").write_text("[project]\nname = \"inner\"\n")
    assert find_config(spec) == tmp_path / "pyproject.toml"
    assert invoke("check", spec).output.startswith(str(spec) + ": ok")
    (spec.parent / "pyproject.toml").write_text('[tool.cnnspec]\nignore = ["W112"]\n')
    assert codes(invoke("check", spec)) == {"W104"}


#: TOML texts that make a `tool.cnnspec` table, in every way TOML has, and texts that do not
TABLES = ['[tool.cnnspec]\nstrict = true\n', '[tool.cnnspec.limits]\nmax-layers = 5\n', '[ tool . "cnnspec" ]\nx=1\n',
          "['tool'.cnnspec.severity]\nW104='off'\n", 'tool.cnnspec.strict = true\n', '[tool]\ncnnspec = { strict = true }\n',
          '[tool]\ncnnspec.strict = true\n', 'tool = { cnnspec = { strict = true } }\n', '[tool]\n"cnnspec".strict = true\n',
          '[[tool.cnnspec]]\nx = 1\n', '  [tool.cnnspec]\nx=1\n', '[project]\nname="p"\n\n[tool.cnnspec]\n',
          '\t[ tool ]\n  cnnspec = {}\n', '[tool.ruff]\nx = 1\n[tool . cnnspec]\ny = 2\n']
NO_TABLES = ['[project]\nname = "cnnspec"\n', '[project]\ndependencies = [\n  "cnnspec>=1.0",\n]\n[tool.ruff]\nline-length = 100\n',
             '[tool.pytest.ini_options]\naddopts = "-p cnnspec"\n', '[project.scripts]\ncnnspec = "cnnspec.cli:main"\n[tool.hatch]\nx=1\n']


@pytest.mark.parametrize("text", TABLES + NO_TABLES)
def test_a_pyproject_is_parsed_wherever_toml_could_make_the_table(text):
    import tomllib

    has_table = "cnnspec" in tomllib.loads(text).get("tool", {})
    assert has_table == (text in TABLES)
    assert may_hold_the_table(text) or not has_table
    if text in NO_TABLES:
        assert not may_hold_the_table(text)  # the common case is left unparsed


def test_a_pyproject_that_cannot_hold_the_table_is_not_parsed(project, tmp_path):
    # broken TOML a project's own tools would refuse, with cnnspec only as a value: looked past, unread
    spec = project('[tool.cnnspec]\nignore = ["W104", "W112"]\n')
    (spec.parent / "pyproject.toml").write_text('[project\ndependencies = ["cnnspec>=1"]\n')
    assert find_config(spec) == tmp_path / "pyproject.toml"
    assert invoke("check", spec).output.startswith(str(spec) + ": ok")
    # one that could, and the file is read as TOML, and refused as such
    (spec.parent / "pyproject.toml").write_text('[project\n[tool.cnnspec]\n')
    result = invoke("check", spec)
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_an_explicit_config_wins(project, tmp_path):
    spec = project('[tool.cnnspec]\nignore = ["W104", "W112"]\n')
    other = tmp_path / "other.toml"
    other.write_text('[tool.cnnspec]\nignore = ["W104"]\n')
    assert codes(invoke("check", "--config", other, spec)) == {"W112"}


@pytest.mark.parametrize("table, message", [
    ('[tool.cnnspec]\nignor = ["W112"]\n', "unknown key `ignor`; did you mean `ignore`?"),
    ('[tool.cnnspec]\nignore = ["E201"]\n', "E201 is an error; errors cannot be switched off"),
    ('[tool.cnnspec]\nignore = ["W9999"]\n', "`W9999` is not a diagnostic code"),
    ('[tool.cnnspec]\nignore = "W112"\n', "`ignore` is a list of codes"),
    ('[tool.cnnspec.severity]\nW104 = "fatal"\n', '`fatal` is not one of "error", "warning", "off"'),
    ('[tool.cnnspec.severity]\nE211 = "warning"\n', "E211 is an error"),
    ('[tool.cnnspec.limits]\nmax-parms = 5\n', "did you mean `max-params`?"),
    ('[tool.cnnspec.limits]\nmax-layers = -1\n', "`-1` is not a positive whole number"),
    ('[tool.cnnspec.limits]\nmax-layers = "lots"\n', "`lots` is not a count"),
    ('[tool.cnnspec]\nstrict = "yes"\n', "`strict` is true or false"),
    ("[tool.cnnspec\n", "not valid TOML"),
])
def test_a_configuration_cnnspec_cannot_use_is_a_usage_error(project, table, message):
    spec = project(table)
    result = invoke("check", spec)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    if "TOML" not in message:
        with pytest.raises(ConfigError):
            load_config(spec.parents[2] / "pyproject.toml")


def test_zoo_names_take_the_current_folders_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.cnnspec.limits]\nmax-params = "1M"\n')
    result = invoke("check", "zoo:resnet18")
    assert result.exit_code == 1 and "E301" in result.output
    assert config_for("zoo:resnet18").limits.max_params == 1_000_000
    assert Config().level("W104") == "warning"


def test_a_config_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    import os
    import subprocess
    import sys

    os.mkfifo(tmp_path / "pyproject.toml")
    (tmp_path / "a.cnn").write_text("input x: 3x8x8\nrelu\n")
    # a FIFO with no writer blocks a plain read forever: the timeout turns a regression into a failure
    result = subprocess.run([sys.executable, "-m", "cnnspec", "check", "--config", str(tmp_path / "pyproject.toml"),
                             str(tmp_path / "a.cnn")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "is not a regular file" in result.stderr
    assert "Traceback" not in result.stderr
