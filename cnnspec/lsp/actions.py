"""Formatting (`cnnspec fmt`'s layout) and quick fixes for the mechanical `help:` of a diagnostic:
a misspelt name from "did you mean", `3*3` written `3x3`, the projection shortcut E201 suggests,
a reasoned suppression of a warning."""

from __future__ import annotations

import re

from lsprotocol import types

from cnnspec.analysis.suppress import DIRECTIVE
from cnnspec.codes import Code
from cnnspec.diagnostics import SpecError

DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")
SHORTCUT = re.compile(r"add a projection shortcut: `(shortcut \{[^`]*\})`")
PRODUCT = re.compile(r"\d+(\s*\*\s*\d+)+")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: the reason a suppression is inserted with, for the author to write
REASON = "<why this is intended>"


def formatting(text: str, path: str, positions) -> list[types.TextEdit]:
    from cnnspec.frontend.formatter import format_text

    try:
        formatted = format_text(text, path)
    except (SpecError, RecursionError):
        return []  # a spec that does not parse is left as it is; its diagnostics say why
    if formatted == text:
        return []
    return [types.TextEdit(range=positions.whole(), new_text=formatted)]


def code_actions(uri: str, lines: list[str], positions, diagnostics) -> list[types.CodeAction]:
    actions = []
    for diagnostic in diagnostics:
        if diagnostic.source != "cnnspec":
            continue
        data = diagnostic.data if isinstance(diagnostic.data, dict) else {}
        code = data.get("code") or (str(diagnostic.code) if diagnostic.code is not None else "")
        help_text = data.get("help") or _help_in(diagnostic.message)
        edit = _fix(lines, positions, diagnostic.range, code, help_text)
        if edit is not None:
            actions.append(_action(uri, edit[0], [edit[1]], diagnostic, preferred=True))
        if code.startswith("W") and code != Code.SUPPRESSION_WITHOUT_REASON:
            actions.append(_action(uri, f"Suppress `{code}` on this line, with a reason",
                                   [suppression(lines, positions, diagnostic.range.start.line, code)], diagnostic))
    return actions


def _help_in(message: str) -> str | None:
    for line in message.split("\n"):
        if line.startswith("help: "):
            return line[len("help: "):]
    return None


def _action(uri, title, edits, diagnostic, preferred=False) -> types.CodeAction:
    return types.CodeAction(title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diagnostic],
                            is_preferred=preferred or None, edit=types.WorkspaceEdit(changes={uri: edits}))


def _text_in(lines: list[str], positions, rng: types.Range) -> tuple[str, int, int] | None:
    """The text of a one-line range, with its 1-based line and start column."""
    if rng.start.line != rng.end.line or not 0 <= rng.start.line < len(lines):
        return None
    line, start = positions.place(rng.start)
    _, end = positions.place(rng.end)
    return lines[line - 1][start - 1:end - 1], line, start


def _fix(lines, positions, rng, code, help_text) -> tuple[str, types.TextEdit] | None:
    found = _text_in(lines, positions, rng)
    if found is None:
        return None
    text, line, start = found
    if code == Code.KERNEL_AS_PRODUCT and PRODUCT.fullmatch(text):
        written = "x".join(part.strip() for part in text.split("*"))
        return f"Write `{written}`", _replace(positions, line, start, len(text), written)
    shortcut = SHORTCUT.search(help_text or "")
    if code == Code.RESIDUAL_MISMATCH and shortcut is not None and text == "residual":
        end = _closing_brace(lines, line, start)
        if end is not None and not lines[end[0] - 1][end[1]:].lstrip().startswith("shortcut"):
            return "Add the projection shortcut", _replace(positions, end[0], end[1] + 1, 0, f" {shortcut.group(1)}")
    near = DID_YOU_MEAN.search(help_text or "")
    name = NAME.search(text)
    if near is not None and name is not None and NAME.fullmatch(near.group(1)):
        return (f"Change `{name.group()}` to `{near.group(1)}`",
                _replace(positions, line, start + name.start(), len(name.group()), near.group(1)))
    return None


def _closing_brace(lines: list[str], line: int, column: int) -> tuple[int, int] | None:
    """(line, column) of the `}` that closes the first `{` from (line, column), comments and
    strings skipped."""
    from cnnspec.lsp.hover import comment_start

    depth = 0
    for number in range(line, len(lines) + 1):
        text = lines[number - 1]
        comment = comment_start(text)
        code = text[:comment - 1] if comment else text
        in_string = False
        for index in range(column - 1 if number == line else 0, len(code)):
            char = code[index]
            if char == '"':
                in_string = not in_string
            elif not in_string and char == "{":
                depth += 1
            elif not in_string and char == "}":
                depth -= 1
                if depth == 0:
                    return number, index + 1
    return None


def _replace(positions, line: int, column: int, length: int, text: str) -> types.TextEdit:
    return types.TextEdit(range=types.Range(start=positions.position(line, column),
                                            end=positions.position(line, column + length)), new_text=text)


def suppression(lines: list[str], positions, line0: int, code: str) -> types.TextEdit:
    """`# cnnspec: ignore[CODE] reason` at the end of the line, or the code added to the line's
    directive; a line with another comment gets the directive on a line of its own above it."""
    text = lines[line0] if 0 <= line0 < len(lines) else ""
    match = DIRECTIVE.search(text)
    if match is not None and not match["file"]:
        at = match.start("codes") + len(match["codes"])
        return _replace(positions, line0 + 1, at + 1, 0, f", {code}")
    if "#" in text:
        indent = text[:len(text) - len(text.lstrip())]
        return _replace(positions, line0 + 1, 1, 0, f"{indent}# cnnspec: ignore[{code}] {REASON}\n")
    end = len(text.rstrip()) + 1
    return _replace(positions, line0 + 1, end, len(text) + 1 - end, f"  # cnnspec: ignore[{code}] {REASON}")
