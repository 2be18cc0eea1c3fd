"""`cnnspec fmt`: a spec in the printer's canonical layout, with its comments kept.

The spec is parsed to the IR and printed again, so formatting cannot change what a spec means
(its IR is the same, spans aside). Comments are not in the IR: they are read from the source
lines and placed back by line number.

- A comment on a line of its own stays on its own line, before the statement that followed it,
  indented as that statement (or as the group's body before a closing brace).
- A comment after code stays at the end of the printed line that came from that source line; if
  no printed line starts there (a list written over several lines), it moves to its own line.
- Consecutive trailing comments are aligned two spaces after the longest line of the run, as
  gofmt aligns them.
- One blank line is kept where the source had one or more; none after `{`, before `}` or at
  the ends of the file.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import INDENT, Line, Printer


@dataclass(frozen=True)
class Comment:
    line: int
    text: str
    own_line: bool


def find_comments(lines: list[str]) -> list[Comment]:
    """Every `#` comment outside a string (strings cannot span lines or hold `"`)."""
    found = []
    for number, line in enumerate(lines, start=1):
        in_string = False
        for column, char in enumerate(line):
            if char == '"':
                in_string = not in_string
            elif char == "#" and not in_string:
                found.append(Comment(number, line[column:].rstrip(), own_line=not line[:column].strip()))
                break
    return found


def format_text(text: str, path: str = "<string>") -> str:
    """The canonical layout of a spec's text; `SpecError` when it does not parse."""
    spec = parse_text(text, path)
    source = text.splitlines()
    return Layout(source, find_comments(source)).render(Printer(keep_layout=True).lines(spec))


class Layout:
    def __init__(self, source: list[str], comments: list[Comment]):
        self.source = source
        self.comments = comments
        self.out: list[tuple[str, str | None]] = []  # (code, trailing comment)

    def blank_before(self, line: int) -> bool:
        return line >= 2 and not self.source[line - 2].strip()

    def emit(self, text: str, comment: str | None = None, blank: bool = False) -> None:
        if blank and self.out and not self.out[-1][0].endswith("{") and self.out[-1][0] != "":
            self.out.append(("", None))
        self.out.append((text, comment))

    def render(self, printed: list[Line]) -> str:
        starts = {line.source_line for line in printed if line.source_line is not None}
        # a trailing comment goes to the last printed line from its source line
        last_from: dict[int, int] = {}
        for index, line in enumerate(printed):
            if line.source_line is not None:
                last_from[line.source_line] = index
        trailing = {c.line: c.text for c in self.comments if not c.own_line and c.line in starts}
        loose = deque(c for c in self.comments if c.own_line or c.line not in starts)
        for index, line in enumerate(printed):
            if line.source_line is not None:
                while loose and loose[0].line < line.source_line:
                    comment = loose.popleft()
                    self.emit(INDENT * line.comment_depth + comment.text, blank=self.blank_before(comment.line))
            is_closing = line.text.lstrip().startswith("}")
            blank = line.source_line is not None and not is_closing and self.blank_before(line.source_line)
            comment = trailing.get(line.source_line) if last_from.get(line.source_line) == index else None
            self.emit(line.text, comment, blank=blank)
        for comment in loose:
            self.emit(comment.text, blank=self.blank_before(comment.line))
        return "".join(text + "\n" for text in aligned(self.out))


def aligned(out: list[tuple[str, str | None]]) -> list[str]:
    """Lines with their trailing comments, each run of consecutive ones aligned."""
    lines, run = [], []

    def flush() -> None:
        width = max(len(code) for code, _ in run)
        lines.extend(f"{code.ljust(width)}  {comment}" for code, comment in run)
        run.clear()

    for code, comment in out:
        if comment is not None:
            run.append((code, comment))
            continue
        if run:
            flush()
        lines.append(code)
    if run:
        flush()
    return lines
