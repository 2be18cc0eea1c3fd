"""cnnspec's places and diagnostics as LSP's.

cnnspec spans count lines and columns from 1, in code points (lines split at `\\n` only, as
Lark splits them); LSP positions count from 0, the column in the client's code units (UTF-16
unless another encoding was agreed). A column in code points `c` on a line `s` is
`units(s[:c - 1])` in the client's units.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types

from cnnspec.codes import CODES, page_path
from cnnspec.diagnostics import Diagnostic
from cnnspec.ir import Span


def uri_to_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        # an unsaved buffer (`untitled:`): a name in the current folder, so imports resolve there
        return str(Path.cwd() / (Path(unquote(parsed.path)).name or "untitled.cnn"))
    return str(Path(unquote(parsed.path)).resolve())


def path_to_uri(path: str) -> str:
    return Path(path).as_uri()


class Positions:
    """Conversion between cnnspec's (line, column) and LSP's positions for one text."""

    def __init__(self, lines: list[str], units):
        self.lines = lines
        #: str -> its length in the client's code units
        self.units = units

    def position(self, line: int, column: int) -> types.Position:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return types.Position(line=max(line - 1, 0), character=self.units(text[:max(column - 1, 0)]))

    def range(self, span: Span) -> types.Range:
        return types.Range(start=self.position(span.line, span.column),
                           end=self.position(span.end_line, span.end_column))

    def place(self, position: types.Position) -> tuple[int, int]:
        """An LSP position as cnnspec's 1-based (line, column) in code points."""
        text = self.lines[position.line] if 0 <= position.line < len(self.lines) else ""
        count = 0
        for index, char in enumerate(text):
            if count >= position.character:
                return position.line + 1, index + 1
            count += self.units(char)
        return position.line + 1, len(text) + 1

    def whole(self) -> types.Range:
        last = len(self.lines)
        return types.Range(start=types.Position(line=0, character=0),
                           end=types.Position(line=last, character=0))


@functools.lru_cache(maxsize=None)
def page_uri(code: str) -> str | None:
    """The `file:` URI of the code's page among the installed docs, if it has one (once per code:
    finding it took four-fifths of converting a diagnostic, 0.5 s for a spec with 1,000 warnings)."""
    if code not in CODES:
        return None
    page = page_path(code)
    return page.resolve().as_uri() if page.exists() else None


def to_lsp(diagnostic: Diagnostic, path: str, positions: Positions, other_lines, anchor: Span | None):
    """One LSP diagnostic for a document at `path`. A diagnostic located in another file (an
    imported one) is shown at `anchor`, the import it came through, and points at its place
    through its related information. `other_lines(file)` gives another file's lines."""
    d = diagnostic
    related = []
    span = d.span
    message = d.message
    if span is not None and span.file != path:
        related.append(_related(span, d.label or d.message, other_lines(span.file), positions.units))
        message = f"in `{Path(span.file).name}`: {message}"
        span = next((lab.span for lab in d.labels if lab.span.file == path), anchor)
    related += [_related(lab.span, lab.message, positions.lines if lab.span.file == path else other_lines(lab.span.file),
                         positions.units) for lab in d.labels]
    extra = [f"note: {note}" for note in d.notes] + ([f"help: {d.help}"] if d.help else [])
    href = page_uri(d.code)
    return types.Diagnostic(
        range=positions.range(span) if span is not None else types.Range(
            start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
        message="\n".join([message, *extra]),
        severity=types.DiagnosticSeverity.Error if d.severity == "error" else types.DiagnosticSeverity.Warning,
        code=d.code if d.code in CODES else None,
        code_description=types.CodeDescription(href=href) if href else None,
        source="cnnspec",
        related_information=related or None,
        data={"help": d.help, "code": d.code},
    )


def _related(span: Span, message: str, lines: list[str], units) -> types.DiagnosticRelatedInformation:
    positions = Positions(lines, units)
    return types.DiagnosticRelatedInformation(
        location=types.Location(uri=path_to_uri(span.file), range=positions.range(span)), message=message)
