"""Input that once raised a Python exception or was silently misread: each is a located
diagnostic now (exit 1 from the CLI), or, for misuse of the Python API, a `TypeError` or
`ValueError` at the call that names the argument."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import cnnspec
from cnnspec.cli import main
from cnnspec.frontend.loader import read_source
from cnnspec.frontend.parser import MAX_SOURCE_BYTES

HUGE = "9" * 4_400  # past Python's 4,300-digit limit on int <-> str conversion
WIDE = "9" * 320  # past the largest float, about 1.8e308

#: a spec holding `{n}` where a number is read, for each place a number is read
NUMBER_PLACES = {
    "layer argument": "input x: 3x8x8\nconv {n} 1x1\n",
    "option": "input x: 3x8x8\nconv 4 3x3 stride={n}\n",
    "input shape": "input x: 3x{n}x8\nrelu\n",
    "flat input": "input x: {n}\nrelu\n",
    "kernel size": "input x: 3x8x8\nconv 4 {n}x3\n",
    "single kernel size": "input x: 3x8x8\nconv 4 {n}\n",
    "numbered label": "input x: 3x8x8\nb{{{n}}}: {{ relu }} * 2\n",
    "repeat count": "input x: 3x8x8\n{{ relu }} * {n}\n",
    "block default": "block b(c={n}) {{ conv c 1x1 }}\ninput x: 3x8x8\nb()\n",
    "expect figure": "input x: 3x8x8\nrelu\nexpect params == {n}\n",
    "expect shape": "input x: 3x8x8\nrelu\nexpect shape 3x{n}\n",
    "expression": "input x: 3x8x8\nconv 2*{n} 1x1\n",
    "list": "input x: 1x8x8\nconv 1 1x1 weights=[{n}] frozen\n",
}


def diagnostics_of(text: str, path: str = "bad.cnn", **options) -> list:
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.loads(text, path=path, **options)
    caught.value.render()
    return caught.value.diagnostics


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of the first `needle` in `text`, found independently of the parser."""
    before = text[:text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def run_cli(*args, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("place", sorted(NUMBER_PLACES))
@pytest.mark.parametrize("digits", [HUGE, WIDE, "1" + "0" * 15 + "1"], ids=["4400-digits", "320-digits", "10^15+1"])
def test_an_integer_too_large_is_refused_where_it_is_written(place, digits):
    text = NUMBER_PLACES[place].format(n=digits)
    [diagnostic] = diagnostics_of(text)
    assert diagnostic.code == "E108"
    assert diagnostic.message == f"number too large ({len(digits):,} digits)"
    assert (diagnostic.span.line, diagnostic.span.column) == position(text, digits)
    assert diagnostic.span.end_column - diagnostic.span.column == len(digits)


@pytest.mark.parametrize("place", ["layer argument", "input shape", "expect figure", "numbered label"])
def test_the_largest_integer_is_read(place):
    """10^15 is the bound the evaluator holds any value to: as a literal it is read (and then
    refused, or not, for what it means)."""
    text = NUMBER_PLACES[place].format(n="1" + "0" * 15)
    try:
        cnnspec.loads(text, path="ok.cnn")
    except cnnspec.SpecError as error:
        assert "number too large (" not in error.render()


def test_leading_zeros_and_digit_groups_do_not_count():
    net = cnnspec.loads("input x: 3x8x8\nconv 0000000000000000004 1x1\nexpect params == 1_6\n")
    assert net.params == 16


@pytest.mark.parametrize("literal", ["1e400", WIDE + ".0", WIDE + "M", "9" * 300 + "T"])
def test_a_float_beyond_the_largest_double_is_refused(literal):
    for template in ("input x: 3x8x8\nmul {n}\n", "input x: 3x8x8\nrelu\nexpect params < {n}\n"):
        if literal[-1] in "MT" and "mul" in template:
            continue  # a quantity is an `expect` figure only
        text = template.format(n=literal)
        [diagnostic] = diagnostics_of(text)
        assert (diagnostic.code, diagnostic.message) == ("E108", "number is not finite")
        assert (diagnostic.span.line, diagnostic.span.column) == position(text, literal)


def test_every_number_out_of_range_and_every_syntax_error_is_reported_at_once():
    text = f"input x: 3x8x8\nconv {WIDE} 1x1\nconv 4 @\nmul 1e999\n"
    found = [(d.code, d.span.line) for d in diagnostics_of(text)]
    assert sorted(found) == [("E002", 3), ("E108", 2), ("E108", 4)]


def test_a_huge_number_through_the_cli_is_exit_one_without_a_traceback(tmp_path):
    spec = tmp_path / "huge.cnn"
    spec.write_text(f"input x: 3x8x8\nconv {HUGE} 1x1\nexpect params < {WIDE}\n")
    result = run_cli("check", spec)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.count("error[E108]") == 2


@pytest.mark.parametrize("text, code, column", [
    ("input x: ３x８x８\nrelu\n", "E002", 10),  # fullwidth digits
    ("input x: 3x8x8\nconv ٣ 3x3\n", "E002", 6),  # an Arabic-Indic three
    ("input x: 3x8x8\nconv 4 3x3 stride=２\n", "E002", 19),
    ("input x: 3x8x8\nrelu\nexpect params < ５M\n", "E002", 17),
    ("input x: 3x8x8\nb{１}: { relu } * 2\n", "E001", 2),  # not a numbered label: a name, then a group
])
def test_numbers_are_ascii_digits_only(text, code, column):
    [diagnostic] = diagnostics_of(text)
    assert (diagnostic.code, diagnostic.span.column) == (code, column)


# ---------------------------------------------------------------- syntax-error recovery


@pytest.mark.parametrize("line, column", [
    ("  when (c > 1) { relu } else { relu } )", 39),
    ("  when (c >) { relu } else { relu }", 12),
    ("  when (c > 1) { relu } else { relu = }", 39),
    ("  residual { conv c 1x1 } shortcut { conv c 1x1 @ }", 49),
    ("  { relu } { relu }", 12),
])
def test_a_broken_line_of_several_brace_groups_is_one_error(line, column):
    """The broken line is blanked to its braces and the text parsed again; `}{` must not be a
    second error of the blanking's making (it once was, with its caret under the line's start)."""
    text = f"block b(c) {{\n{line}\n  relu\n}}\ninput x: 3x8x8\nb(4)\nconv 4 @\n"
    found = [(d.span.line, d.span.column) for d in diagnostics_of(text)]
    assert found == [(2, column), (7, 8)]


# ---------------------------------------------------------------- blocks


def test_a_parameter_declared_twice_is_an_error_at_the_second():
    text = "block b(c, k=3, c=4, k=1) { conv c k }\ninput x: 3x8x8\nb(4)\n"
    found = diagnostics_of(text)
    assert [(d.code, d.message) for d in found] == [
        ("E141", "parameter `c` is declared twice in block `b`"),
        ("E141", "parameter `k` is declared twice in block `b`")]
    for diagnostic, second, first in zip(found, ("c=4", "k=1"), ("c,", "k=3")):
        assert (diagnostic.span.line, diagnostic.span.column) == position(text, second)
        assert diagnostic.span.end_column == diagnostic.span.column + 1  # the name alone, not its default
        [label] = diagnostic.labels
        assert (label.span.line, label.span.column, label.message) == (*position(text, first), "first declared here")


def test_a_parameter_declared_twice_in_an_imported_block_is_an_error_there(tmp_path):
    (tmp_path / "lib.cnn").write_text("block b(c, c) { conv c 1x1 }\n")
    [diagnostic] = diagnostics_of('import "lib.cnn"\ninput x: 3x8x8\nb(4, 4)\n', root=tmp_path)
    assert (diagnostic.code, diagnostic.span.file, diagnostic.span.column) == ("E141", "lib.cnn", 12)


# ---------------------------------------------------------------- files and imports


@pytest.mark.parametrize("path, reason", [
    ("a\x00b.cnn", "embedded null byte"),
    ("a" * 300 + ".cnn", "file name too long"),
])
def test_an_import_path_the_system_cannot_open_is_located(path, reason, tmp_path):
    text = f'input x: 3x8x8\nimport "{path}"\nrelu\n'
    [diagnostic] = diagnostics_of(text, root=tmp_path)
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("E132", 2, 1)
    assert diagnostic.message.endswith(f": {reason}")
    assert "\x00" not in diagnostic.message  # shown escaped, as `a\\x00b.cnn`


@pytest.mark.parametrize("path", ["a\x00b.cnn", "a" * 300 + ".cnn"])
def test_a_spec_path_the_system_cannot_open_is_a_diagnostic(path):
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.load(path)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.code == "E132" and diagnostic.message.startswith("cannot read `")


@pytest.fixture
def odd_files(tmp_path):
    """A folder holding a good spec, a FIFO, a link to /dev/zero and a link to the FIFO."""
    (tmp_path / "good.cnn").write_text("input x: 3x8x8\nrelu\n")
    os.mkfifo(tmp_path / "fifo.cnn")
    os.symlink("/dev/zero", tmp_path / "zero.cnn")
    os.symlink(tmp_path / "fifo.cnn", tmp_path / "to_fifo.cnn")
    return tmp_path


@pytest.mark.parametrize("name", ["fifo.cnn", "zero.cnn", "to_fifo.cnn", "/dev/zero"])
def test_a_spec_that_is_not_a_regular_file_is_refused_without_blocking(odd_files, name):
    result = run_cli("check", odd_files / name)
    assert result.returncode == 1, result.stderr
    assert f"error[E132]: `{odd_files / name}` is not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_holding_a_fifo_and_a_device_checks_the_rest(odd_files):
    result = run_cli("check", odd_files)
    assert result.returncode == 1
    assert "good.cnn: ok" in result.stdout
    assert sorted(line.split("`")[1] for line in result.stderr.splitlines() if "is not a regular file" in line) == [
        str(odd_files / name) for name in ("fifo.cnn", "to_fifo.cnn", "zero.cnn")]


def test_fmt_refuses_a_fifo_and_a_device(odd_files):
    result = run_cli("fmt", "--check", odd_files)
    assert result.returncode == 1
    assert result.stderr.count("is not a regular file") == 3 and "Traceback" not in result.stderr


@pytest.mark.parametrize("name, code", [("fifo.cnn", "E132"), ("to_fifo.cnn", "E132"), ("zero.cnn", "E130")])
def test_an_import_that_is_not_a_regular_file_is_located(odd_files, name, code):
    (odd_files / "net.cnn").write_text(f'import "{name}"\ninput x: 3x8x8\nrelu\n')
    result = run_cli("check", odd_files / "net.cnn")
    assert result.returncode == 1
    assert f"error[{code}]" in result.stderr and "net.cnn:1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_size_limit_counts_the_bytes_read(tmp_path):
    spec = tmp_path / "big.cnn"
    spec.write_text("input x: 3x8x8\n" + "relu\n" * (MAX_SOURCE_BYTES // 5))
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.load(spec)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.code == "E012"
    assert f"({os.path.getsize(spec):,} bytes; the limit is {MAX_SOURCE_BYTES:,})" in diagnostic.message


def test_newlines_are_translated_unless_kept(tmp_path):
    spec = tmp_path / "crlf.cnn"
    spec.write_bytes(b"input x: 3x8x8\r\nrelu\rrelu\r\n")
    assert read_source(spec, "crlf.cnn") == "input x: 3x8x8\nrelu\nrelu\n"
    assert read_source(spec, "crlf.cnn", newline="") == "input x: 3x8x8\r\nrelu\rrelu\r\n"
    assert [r.kind for r in cnnspec.load(spec).rows] == ["relu", "relu"]


# ---------------------------------------------------------------- the zoo


@pytest.mark.parametrize("name, help", [
    ("../specs/resnet18", "a zoo name is a name, not a path; did you mean `zoo:resnet18`?"),
    ("common/resnet", "a zoo name is a name, not a path; did you mean `zoo:resnet50`?"),
    ("/etc/hostname", "a zoo name is a name, not a path; run `cnnspec zoo list` for the names"),
    ("resnt18", "did you mean `zoo:resnet18`?"),
])
def test_a_zoo_name_is_a_name_not_a_path(name, help):
    with pytest.raises(cnnspec.SpecError) as caught:
        cnnspec.load(f"zoo:{name}")
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.message, diagnostic.help) == ("E132", f"no zoo network `{name}`", help)
    result = CliRunner().invoke(main, ["check", f"zoo:{name}"])
    assert result.exit_code == 1 and "E132" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ---------------------------------------------------------------- the Python API

SPEC = "input x: 3x8x8\nconv 4 3x3\n"


@pytest.mark.parametrize("call, error, words", [
    (lambda: cnnspec.loads(SPEC.encode()), TypeError, ["loads()", "'text'", "not bytes", "decode"]),
    (lambda: cnnspec.loads(None), TypeError, ["loads()", "'text'", "not None"]),
    (lambda: cnnspec.loads(SPEC, path=None), TypeError, ["'path'", "not None"]),
    (lambda: cnnspec.loads(SPEC, root=3), TypeError, ["'root'", "not int"]),
    (lambda: cnnspec.loads(SPEC, input="3x32x32"), TypeError, ["'input'", "tuple of ints", "not str"]),
    (lambda: cnnspec.loads(SPEC, input=3), TypeError, ["'input'", "not int"]),
    (lambda: cnnspec.loads(SPEC, input=(3, "8", 8)), TypeError, ["'input'", "hold ints, not str"]),
    (lambda: cnnspec.loads(SPEC, input=(3, True, 8)), TypeError, ["'input'", "not bool"]),
    (lambda: cnnspec.loads(SPEC, input=(3, 8.0, 8)), TypeError, ["'input'", "not float"]),
    (lambda: cnnspec.loads(SPEC, input=()), ValueError, ["'input'", "1 to 4 sizes", "not 0"]),
    (lambda: cnnspec.loads(SPEC, input=(1, 2, 3, 4, 5)), ValueError, ["'input'", "not 5"]),
    (lambda: cnnspec.loads(SPEC, limits={"max_layers": 3}), TypeError, ["'limits'", "Limits", "not dict"]),
    (lambda: cnnspec.loads(SPEC, config={"strict": True}), TypeError, ["'config'", "Config", "not dict"]),
    (lambda: cnnspec.load(3), TypeError, ["load()", "'path'", "str or os.PathLike", "not int"]),
    (lambda: cnnspec.load(None), TypeError, ["load()", "'path'", "not None"]),
    (lambda: cnnspec.load(b"specs/lenet5.cnn"), TypeError, ["load()", "'path'", "not bytes"]),
    (lambda: cnnspec.load("zoo:lenet5", input=[1, "28", 28]), TypeError, ["load()", "'input'"]),
    (lambda: cnnspec.check(["a.cnn"]), TypeError, ["check()", "'path'", "not list"]),
    (lambda: cnnspec.check("zoo:lenet5", limits=1), TypeError, ["check()", "'limits'", "not int"]),
])
def test_misuse_of_the_api_is_a_clear_error_at_the_call(call, error, words):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert all(word in message for word in words), message


def test_the_api_takes_paths_lists_and_index_integers():
    class Size:
        """An integer-like value that is not an int (as numpy's are)."""

        def __index__(self):
            return 16

    net = cnnspec.loads(SPEC, path=__import__("pathlib").Path("net.cnn"), input=[3, Size(), 16])
    assert (net.name, net.input_shape, net.output_shape) == ("net", (3, 16, 16), (4, 14, 14))


@pytest.mark.parametrize("size", [0, -1, 10**15 + 1, 10**5000], ids=["0", "-1", "10^15+1", "10^5000"])
def test_an_input_size_out_of_range_is_e103_without_spelling_it_out(size):
    [diagnostic] = diagnostics_of(SPEC, input=(3, size, 8))
    assert diagnostic.code == "E103" and len(diagnostic.message) < 120
    assert ("(beyond 10^15)" in diagnostic.message) == (size > 10**15)


def test_an_input_size_beyond_the_bound_from_the_cli_is_exit_one(tmp_path):
    spec = tmp_path / "net.cnn"
    spec.write_text(SPEC)
    result = run_cli("summary", "--input", f"3x{WIDE}x8", spec)
    assert result.returncode == 1 and "error[E103]" in result.stderr and "Traceback" not in result.stderr
