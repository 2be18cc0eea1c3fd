"""One `Diagnostic` model and one renderer, in the rustc/Elm style.

    error[E201]: residual branches disagree: main path gives 128x28x28, shortcut gives 64x56x56
      --> specs/resnet18.cnn:14:3
       |
     9 |   residual {
       |   -------- main path starts here
    14 |   }
       |   ^ the add is here
       = help: add a projection shortcut

Messages are lowercase without a final period, identifiers in backticks, the fix only under
`help:`. Colour is added only when the caller asks (the CLI does so on a terminal).
"""

from __future__ import annotations

from typing import Annotated, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Strict, model_validator

from cnnspec.codes import Code
from cnnspec.ir import Span

Severity = Literal["error", "warning"]


class Label(BaseModel):
    """A secondary place the diagnostic points at, with what it says there."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    span: Span
    message: str


class Diagnostic(BaseModel):
    """One problem found in a spec. `code` is a member of `Code` (a string is refused, so every
    code raised is a declared one); `severity` is the code's unless a configuration changed it."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    code: Annotated[Code, Strict()]
    severity: Severity
    message: str
    span: Span | None = None
    label: str = ""
    labels: tuple[Label, ...] = ()
    help: str | None = None
    notes: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _severity_of_the_code(cls, data):
        if isinstance(data, dict) and "severity" not in data and isinstance(data.get("code"), Code):
            data = {**data, "severity": data["code"].severity}
        return data

    @property
    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.column, self.code)


class SpecError(Exception):
    """A spec could not be loaded; `diagnostics` says why, each located in the source."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: "SourceMap | None" = None):
        self.diagnostics = sort_diagnostics(diagnostics)
        self.sources = sources or SourceMap()
        super().__init__(self.summary())

    def summary(self) -> str:
        """What `str(error)` shows: the first error (or diagnostic) with its place and its help, so an
        uncaught error still says where and what to do:
        `net.cnn:2:17: error[E107]: unknown name `False` for `bias` (help: it takes `true` or `false`)`."""
        errors = self.errors
        first = errors[0] if errors else self.diagnostics[0] if self.diagnostics else None
        if first is None:
            return "invalid spec"
        where = f"{first.span.file}:{first.span.line}:{first.span.column}: " if first.span is not None else ""
        summary = f"{where}{first.severity}[{first.code}]: {first.message}"
        if first.help:
            summary += f" (help: {first.help})"
        more = len(errors) - 1
        if more > 0:
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        return summary

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def render(self, color: bool = False) -> str:
        return render_all(self.diagnostics, self.sources, color=color)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by position, duplicates (same code at the same place) dropped."""
    seen, unique = set(), []
    for d in sorted(diagnostics, key=lambda d: d.sort_key):
        key = (d.code, d.sort_key, d.message)
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


class SourceMap:
    """The text of every file a spec was read from, for quoting source lines."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}
        self._texts: dict[str, str] = {}

    def add(self, name: str, text: str) -> None:
        self._lines[name] = text.splitlines()
        self._texts[name] = text

    def text(self, name: str) -> str | None:
        """The whole text of a file as it was read (newlines as `\\n`)."""
        return self._texts.get(name)

    def files(self):
        """(name, lines) of every file read."""
        return list(self._lines.items())

    def line(self, name: str, number: int) -> str | None:
        lines = self._lines.get(name)
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1].replace("\t", " ")


# ---------------------------------------------------------------- rendering

_STYLES = {"error": "1;31", "warning": "1;33", "help": "1;36", "gutter": "1;34", "bold": "1"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if color else text


def render(diagnostic: Diagnostic, sources: SourceMap, color: bool = False) -> str:
    d = diagnostic
    head = _paint(f"{d.severity}[{d.code}]", d.severity, color) + _paint(f": {d.message}", "bold", color)
    out = [head]
    marks = []  # (span, underline char, text, style)
    if d.span is not None:
        marks.append((d.span, "^", d.label, d.severity))
    marks += [(lab.span, "-", lab.message, "help") for lab in d.labels]
    quoted = [m for m in marks if sources.line(m[0].file, m[0].line) is not None]
    width = max([len(str(m[0].line)) for m in quoted] + [1])
    pad = " " * width
    if d.span is not None:
        out.append(f"{pad}{_paint('-->', 'gutter', color)} {d.span.file}:{d.span.line}:{d.span.column}")
    if quoted:
        out.append(f"{pad} {_paint('|', 'gutter', color)}")
        previous_file = d.span.file if d.span else None
        previous_line = None
        for span, char, text, style in sorted(quoted, key=lambda m: (m[0].file != previous_file, m[0].file, m[0].line, m[0].column)):
            if span.file != previous_file:
                out.append(f"{pad}{_paint('::>', 'gutter', color)} {span.file}:{span.line}:{span.column}")
                previous_file = span.file
            source = sources.line(span.file, span.line) or ""
            end = span.end_column if span.end_line == span.line else len(source) + 1
            length = max(1, min(end, len(source) + 1) - span.column)
            # marks on one line share its quote, each underlined on a row of its own
            if (span.file, span.line) != previous_line:
                gutter = _paint(f"{span.line:>{width}} |", "gutter", color)
                out.append(f"{gutter} {source}".rstrip())
                previous_line = (span.file, span.line)
            underline = " " * (span.column - 1) + _paint(char * length + (f" {text}" if text else ""), style, color)
            out.append(f"{pad} {_paint('|', 'gutter', color)} {underline}")
    for note in d.notes:
        out.append(f"{pad} = note: {note}")
    if d.help:
        out.append(f"{pad} = {_paint('help', 'help', color)}: {d.help}")
    return "\n".join(out)


def render_all(diagnostics: Iterable[Diagnostic], sources: SourceMap, color: bool = False) -> str:
    diagnostics = list(diagnostics)
    blocks = [render(d, sources, color) for d in diagnostics]
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    tally = []
    if errors:
        tally.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        tally.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    if tally:
        blocks.append(" and ".join(tally) + " found")
    return "\n\n".join(blocks)


def to_json(diagnostic: Diagnostic) -> dict:
    """The same fields the text renderer shows, for `--format json`."""
    return diagnostic.model_dump(mode="json")
