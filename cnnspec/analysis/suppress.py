"""`# cnnspec: ignore[W103] reason` comments: warnings a spec has looked at and accepted.

At the end of a line, the comment silences those codes on that line; on a line of its own, on
the next line that holds code; `# cnnspec: ignore-file[W105] reason` silences them in the whole
file. Errors cannot be silenced. A suppression without a reason is itself a warning (W190).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, SourceMap
from cnnspec.ir import Span

DIRECTIVE = re.compile(r"#\s*cnnspec:\s*ignore(?P<file>-file)?\[(?P<codes>[^\]]*)\]\s*(?P<reason>.*)$")


@dataclass
class Suppressions:
    whole_file: set[str] = field(default_factory=set)
    by_line: dict[int, set[str]] = field(default_factory=dict)
    unexplained: list[Span] = field(default_factory=list)


def read_suppressions(name: str, lines: list[str]) -> Suppressions:
    found = Suppressions()
    pending: set[str] = set()
    for number, line in enumerate(lines, start=1):
        match = DIRECTIVE.search(line)
        code_part = line.split("#")[0].strip()
        if match is None:
            if code_part and pending:
                found.by_line.setdefault(number, set()).update(pending)
                pending = set()
            continue
        codes = {c.strip() for c in match["codes"].split(",") if c.strip()}
        if not match["reason"].strip():
            column = match.start() + 1
            found.unexplained.append(Span(file=name, line=number, column=column, end_line=number,
                                          end_column=column + len(match.group(0))))
        if match["file"]:
            found.whole_file |= codes
        elif code_part:
            found.by_line.setdefault(number, set()).update(codes)
        else:
            pending |= codes
    return found


def apply_suppressions(diagnostics: list[Diagnostic], sources: SourceMap) -> list[Diagnostic]:
    """The diagnostics minus the silenced warnings, plus W190 for each suppression without a reason."""
    table = {name: read_suppressions(name, lines) for name, lines in sources.files()}
    kept = []
    for d in diagnostics:
        rules = table.get(d.span.file) if d.span is not None else None
        if d.severity == "warning" and rules is not None and (
                d.code in rules.whole_file or d.code in rules.by_line.get(d.span.line, ())):
            continue
        kept.append(d)
    for rules in table.values():
        for span in rules.unexplained:
            kept.append(Diagnostic(code=Code.SUPPRESSION_WITHOUT_REASON, message="a suppression without a reason",
                                   span=span, label="say why this warning does not apply",
                                   help="write the reason after the codes: `# cnnspec: ignore[W105] as in the paper`"))
    return kept
