"""Inlay hints: at the end of each line that gives an output, `-> 64x56x56` (the summary's
shape), and a call's or a labelled group's parameters. A line inside a block called with
different shapes shows each distinct one."""

from __future__ import annotations

from lsprotocol import types

from cnnspec.lsp.hover import comment_start
from cnnspec.lsp.sites import Site

#: distinct figures shown for a line inside a block before `…`
SHOWN = 3


def hint_text(site: Site) -> str:
    texts = []
    for f in site.instances:
        text = f.shape if site.what in ("layer", "merge") else f"{f.shape} ({f.params:,} params)"
        if text not in texts:
            texts.append(text)
    shown = " | ".join(texts[:SHOWN]) + (" | …" if len(texts) > SHOWN else "")
    return f"-> {shown}"


def inlay_hints(result, positions, within: types.Range) -> list[types.InlayHint]:
    hints = []
    for line, site in sorted(result.index.lines().items()):
        if not within.start.line <= line - 1 <= within.end.line:
            continue
        text = result.lines[line - 1] if line <= len(result.lines) else ""
        comment = comment_start(text)
        end = len(text[:comment - 1 if comment else None].rstrip())
        hints.append(types.InlayHint(position=positions.position(line, end + 1), label=hint_text(site),
                                     kind=types.InlayHintKind.Type, padding_left=True))
    return hints
