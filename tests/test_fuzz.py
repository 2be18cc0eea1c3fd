"""No input, however malformed, raises anything but `SpecError` (which carries diagnostics)."""

import os
import re
import signal
from contextlib import contextmanager

import pytest
from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.analysis.limits import Limits

ZOO = {p.stem: p.read_text() for p in sorted(SPECS.glob("*.cnn"))}
TOKENS = ["conv", "deconv", "residual", "shortcut", "concat", "crop", "add", "scale", "when", "else", "block",
          "input", "network", "import", "expect", "{", "}", "(", ")", "[", "]", ",", ";", "\n", ":", "=", "*", "-",
          "//", "0", "1", "-1", "3x3", "1x1x1x1", "99999999999", "1e308", "in.c", "in.q", "x", "stride=0",
          "pad=same", "groups=3", "\"../x.cnn\"", "\"lib.cnn\"", "true", "not", "or", "#", "flatten", "linear 0",
          # numbers no float or int conversion may take, digits that are not ASCII, odd import paths
          "9" * 4_400, "9" * 320, "1e999", "9" * 320 + "M", "３x８", "٣", "b{" + "9" * 20 + "}:", "\"a\x00b\"",
          "\"" + "a" * 300 + "\"", "block b(c, c)"]
# small budgets keep each example fast; the limits themselves are what is being exercised
LIMITS = Limits(max_layers=3_000, max_repeat=200)
#: the same examples every run (derandomized, no example database), so that a run that fails,
#: or takes long, does so again; `CNNSPEC_FUZZ=explore` draws fresh ones (with pytest's
#: `--hypothesis-seed=N`, reproducibly), as many, to hunt further
FUZZ = settings(deadline=None, database=None, derandomize=os.environ.get("CNNSPEC_FUZZ") != "explore")


def check_text(text: str) -> None:
    try:
        net = cnnspec.loads(text, path="fuzz.cnn", limits=LIMITS)
    except cnnspec.SpecError as error:
        assert error.diagnostics, "a SpecError must carry at least one diagnostic"
        for d in error.diagnostics:
            assert d.code and d.message
        error.render()
        return
    net.summary(format="json")


@settings(FUZZ, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data):
    check_text(data.decode("utf-8", errors="replace"))


@settings(FUZZ, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS + [" "] * 6), max_size=60).map("".join))
def test_random_token_soup(text):
    check_text("input x: 3x32x32\n" + text)


@st.composite
def mutated_spec(draw):
    text = ZOO[draw(st.sampled_from(sorted(ZOO)))]
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["delete", "insert", "number", "dupline", "dropline"]))
        if action == "delete" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif action == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + " " + draw(st.sampled_from(TOKENS)) + " " + text[i:]
        elif action == "number":
            numbers = list(re.finditer(r"\d+", text))
            if numbers:
                m = draw(st.sampled_from(numbers))
                value = draw(st.sampled_from(["0", "1", "2", "7", "10000", "999999999", "3x3"]))
                text = text[:m.start()] + value + text[m.end():]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            if action == "dupline":
                lines.insert(i, lines[i])
            else:
                del lines[i]
            text = "\n".join(lines)
    return text


# its fixed examples hold VGG-19 with `pad=10000` on every conv, whose check took 27 s of CPU
# (test_limits.py's test_a_padded_map_then_flatten_checks_in_bounded_memory)
@settings(FUZZ, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_spec())
def test_mutated_zoo_specs(text):
    check_text(text)


@pytest.mark.slow
@settings(FUZZ, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_spec())
def test_many_mutated_zoo_specs(text):
    check_text(text)


@settings(FUZZ, max_examples=25)
@given(terms=st.integers(1, 600), groups=st.integers(0, 95), operator=st.sampled_from(["+", "*", "-", " or "]))
def test_deep_nesting_is_a_diagnostic(terms, groups, operator):
    """A long sum nests once per term; inside nested groups the IR nests deeper still. Past
    what can be validated or evaluated, E012 names the place."""
    sum_ = operator.join(["1"] * terms)
    text = "input x: 3x8x8\n" + "{" * groups + f" mul {sum_} " + "}" * groups + "\n"
    check_text(text)


def test_a_sum_of_hundreds_of_terms_is_refused_at_the_sum():
    text = "input x: 3x8x8\nconv " + "+".join(["1"] * 400) + " 1x1\n"
    try:
        cnnspec.loads(text, path="deep.cnn")
    except cnnspec.SpecError as error:
        [diagnostic] = error.diagnostics
        assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("E012", 2, 6)
    else:
        raise AssertionError("a 400-term sum checked")


def test_a_long_run_of_digits_before_a_syntax_error_is_located_at_its_end():
    """The token soup's slowest input: the syntax error after a line of digits looked for the
    number before it by a search that scanned the rest of the run from each digit (5.8 s for
    8,800 digits, growing with the square: some 50 minutes for these 200,000)."""
    digits = 200_000
    for after, column, found in ((" ", digits + 1, "end of line"), (" m", digits + 2, "`m`"), ("x", digits + 1, "`x`")):
        [diagnostic] = diagnostics_of("input x: 3x32x32\n" + "9" * digits + after)
        assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column, diagnostic.message) == \
            ("E001", 2, column, f"unexpected {found}")


# ---------------------------------------------------------------- numbers, digits, paths, parameters, files


def number_tokens(text: str) -> list[tuple[int, int]]:
    """(start, end) of each integer literal of a spec outside comments and strings: whole numbers
    (`25_557_032`) and the parts of dimensions (`3x3`) that touch no letter, `_`, `.` or exponent
    (`conv1`, `1e-6`, `0.5`, `5M` are left alone), and the `{}` of numbered labels."""
    found = []
    for match in re.finditer(r"(?<![A-Za-z0-9_.])(?:[0-9]+(?:_[0-9]+)+|[0-9]+(?:x[0-9]+)*)(?![A-Za-z0-9_.])|\{\}",
                             text):
        start = match.start()
        before_on_line = text[text.rfind("\n", 0, start) + 1:start]
        if "#" in before_on_line or before_on_line.count('"') % 2:
            continue
        if re.search(r"[0-9.][eE][-+]$", before_on_line):
            continue  # the exponent of `1e-6`
        if match.group() == "{}":
            found.append(match.span())
            continue
        for part in re.finditer(r"[0-9_]+", match.group()):
            found.append((start + part.start(), start + part.end()))
    return found


def diagnostics_of(text: str) -> list:
    try:
        cnnspec.loads(text, path="fuzz.cnn", limits=LIMITS)
    except cnnspec.SpecError as error:
        error.render()
        return error.diagnostics
    raise AssertionError("the spec checked")


def line_and_column(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


@settings(FUZZ, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(ZOO)), pick=st.integers(0, 10**6), digits=st.integers(16, 5_000))
def test_a_huge_integer_anywhere_in_a_zoo_spec_is_e108_there(name, pick, digits):
    """Every place the zoo writes an integer (layer arguments, options, shapes, kernel sizes,
    repeat counts, numbered labels, `expect` figures), given 16 to 5,000 digits."""
    text = ZOO[name]
    tokens = number_tokens(text)
    start, end = tokens[pick % len(tokens)]
    braces = text[start:end] == "{}"
    literal = "1" * digits
    mutated = text[:start] + ("{" + literal + "}" if braces else literal) + text[end:]
    offset = start + braces
    found = [(d.code, d.span.line, d.span.column, len(d.message)) for d in diagnostics_of(mutated)]
    assert ("E108", *line_and_column(mutated, offset), len(f"number too large ({digits:,} digits)")) in found


def test_the_number_tokens_of_the_zoo_cover_every_kind_of_place():
    """The finder above sees numbers in each place the test claims."""
    seen = {text[start - 24:end + 1] for text in ZOO.values() for start, end in number_tokens(text)}
    for context in ("input x: 3x", "expect params == ", "stride=2 ", "x3 ", "denselayer{}", "conv 64 ", "* 2\n"):
        assert any(context in c for c in seen), context


NON_ASCII_DIGITS = st.characters(categories=["Nd"]).filter(lambda char: not char.isascii())


@settings(FUZZ, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(ZOO)), pick=st.integers(0, 10**6), digit=NON_ASCII_DIGITS)
def test_a_non_ascii_digit_in_a_number_is_a_syntax_error_there(name, pick, digit):
    text = ZOO[name]
    tokens = [(start, end) for start, end in number_tokens(text) if text[start] != "{"]
    start, _ = tokens[pick % len(tokens)]
    mutated = text[:start] + digit + text[start + 1:]
    line, _ = line_and_column(mutated, start)
    assert any(d.code in ("E001", "E002") and d.span.line == line for d in diagnostics_of(mutated))


@settings(FUZZ, max_examples=100)
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))
def test_non_ascii_text_in_place_of_a_shape_is_never_read_as_a_number(shape):
    """Only ASCII digits make a number: `３x８x８` and the like never check as an input."""
    try:
        net = cnnspec.loads(f"input x: {shape}\n", path="fuzz.cnn", limits=LIMITS)
    except cnnspec.SpecError as error:
        error.render()
        return
    assert re.fullmatch(r"[ \t]*[0-9]+(x[0-9]+)*[ \t]*(#.*)?", shape), (shape, net.input_shape)


ODD_PATH = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30),
    st.text(st.sampled_from("a./\\\x00\x01\x7f ~"), min_size=1, max_size=30),
    st.integers(200, 5_000).map(lambda n: "a" * n + ".cnn"),
    st.sampled_from(["..", "/", ".", "lib.cnn/x.cnn", "../" * 40 + "etc/passwd", "/dev/zero", "sub", "sub/"]),
)


@pytest.fixture(scope="module")
def import_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("imports")
    (root / "lib.cnn").write_text("block b(c) { conv c 1x1 }\n")
    (root / "sub").mkdir()
    return root


@settings(FUZZ, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=ODD_PATH)
def test_an_import_of_any_path_is_a_located_diagnostic_or_a_library(import_root, path):
    text = f'import "{path}"\ninput x: 3x8x8\nrelu\n'
    try:
        net = cnnspec.loads(text, path="fuzz.cnn", root=import_root, limits=LIMITS)
    except cnnspec.SpecError as error:
        error.render()
        imports = [d for d in error.diagnostics if d.code in ("E130", "E131", "E132")]
        assert all(d.span is not None and d.span.line == 1 for d in imports), imports
        assert all("\x00" not in d.message for d in error.diagnostics)
        return
    assert os.path.realpath(import_root / path) == str(import_root / "lib.cnn"), (path, net)


@settings(FUZZ, max_examples=100)
@given(st.lists(st.tuples(st.sampled_from("abck"), st.booleans()), min_size=1, max_size=6))
def test_a_block_parameter_declared_again_is_e141_at_each_repeat(params):
    declared = ", ".join(f"{name}=1" if default else name for name, default in params)
    text = f"block b({declared}) {{ relu }}\ninput x: 3x8x8\nrelu\n"
    seen, repeats = set(), []
    column = len("block b(") + 1
    for name, default in params:
        if name in seen:
            repeats.append(column)
        seen.add(name)
        column += len(f"{name}=1" if default else name) + 2
    try:
        cnnspec.loads(text, path="fuzz.cnn")
        found = []
    except cnnspec.SpecError as error:
        found = [d.span.column for d in error.diagnostics if d.code == "E141"]
    assert found == repeats


@contextmanager
def deadline(seconds: int):
    """A SIGALRM that turns a blocking read (a FIFO opened without O_NONBLOCK) into a failure."""
    def expire(signum, frame):
        raise TimeoutError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    """Files of every kind a path may name: a regular spec, a FIFO, devices, a folder, links."""
    root = tmp_path_factory.mktemp("odd")
    (root / "good.cnn").write_text("block b(c) { conv c 1x1 }\ninput x: 3x8x8\nrelu\n")
    os.mkfifo(root / "fifo.cnn")
    (root / "folder.cnn").mkdir()
    for name, target in (("zero.cnn", "/dev/zero"), ("null.cnn", "/dev/null"), ("to_fifo.cnn", root / "fifo.cnn"),
                         ("to_good.cnn", root / "good.cnn"), ("dangling.cnn", root / "missing.cnn"),
                         ("loop.cnn", root / "loop.cnn")):
        os.symlink(target, root / name)
    return root


FILE_KINDS = ["good.cnn", "fifo.cnn", "folder.cnn", "zero.cnn", "null.cnn", "to_fifo.cnn", "to_good.cnn",
              "dangling.cnn", "loop.cnn", "missing.cnn", "/dev/zero", "/dev/null", "/dev/urandom"]


@settings(FUZZ, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.sampled_from(FILE_KINDS), imported=st.sampled_from(FILE_KINDS))
def test_a_spec_or_an_import_of_any_kind_of_file_never_blocks(odd_files, spec, imported):
    good = {"good.cnn", "to_good.cnn"}
    with deadline(10):
        network, diagnostics, _ = cnnspec.check(odd_files / spec)
        assert (network is not None) == (spec in good)
        assert all(d.span is None for d in diagnostics if d.code == "E132")
        text = f'import "{imported}"\ninput x: 3x8x8\nb(4)\n'
        try:
            cnnspec.loads(text, path="net.cnn", root=odd_files)
            assert imported in good
        except cnnspec.SpecError as error:
            assert imported not in good, error.render()
            assert {d.code for d in error.diagnostics} & {"E130", "E131", "E132"}
            assert all(d.span.line == 1 for d in error.diagnostics if d.code in ("E130", "E132"))
