"""Hover: the summary's figures for the layer, merge, call or label under the cursor; a named
value's shape and receptive field where it is bound; a block's signature and comment; a layer
kind's `cnnspec layers` entry; a code's page."""

from __future__ import annotations

import re

from lsprotocol import types

from cnnspec.analysis.stats import describe_field
from cnnspec.codes import CODES, page_path
from cnnspec.lsp.sites import Figures, Site
from cnnspec.summary import _size

#: how many instances of a site inside a block are shown one by one
SHOWN_INSTANCES = 4

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CODE = re.compile(r"\b[EW]\d{3}\b")


def word_at(line: str, column: int) -> tuple[str, int] | None:
    """The identifier under a 1-based column and its first column, if any."""
    for match in WORD.finditer(line):
        if match.start() + 1 <= column <= match.end() + 1:  # the caret right after a word counts
            return match.group(), match.start() + 1
    return None


def hover(result, positions, position: types.Position) -> types.Hover | None:
    line, column = positions.place(position)
    text = result.lines[line - 1] if 0 < line <= len(result.lines) else ""
    comment_at = comment_start(text)
    if comment_at is not None and column > comment_at:
        return _code_hover(text, column)
    parts = []
    site = result.index.at(line, column)
    word = word_at(text, column)
    if site is None and word is not None and text[word[1] - 1 + len(word[0]):].lstrip().startswith(":"):
        site = result.index.after(line, word[1])  # a label: what it names
    value = value_hover(result, positions, position)
    if value is not None:
        parts.append(value)
    elif site is not None:
        parts.append(describe_site(site))
    if word is not None and value is None:
        parts += _word_hover(result, word[0])
    if not parts:
        return None
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)))


def value_hover(result, positions, position: types.Position) -> str | None:
    """For a named value under the cursor: where it is bound, and its shape and receptive field
    there (each instance's, for a value inside a block called several times)."""
    from cnnspec.lsp.navigation import name_at

    # name_at maps a file's lines to its positions; a hover is in the document's own
    name = name_at(result, lambda lines: positions, position)
    if name is None or name.what != "value" or name.bound_at is None:
        return None
    where = name.bound_at
    network = result.network
    head = f"**value** `{name.name}`, bound on line {where.line}"
    if where.file != result.path:
        head += f" of `{where.file}`"
    if network is None or not hasattr(network, "rows"):
        return head
    inputs = getattr(network, "input_shapes", {})
    if where.line in {d.span.line for d in result.program.spec.statements if d.node == "input"} and name.name in inputs:
        return f"{head} (an input)\n\n`{'x'.join(map(str, inputs[name.name]))}` · RF 1"
    rows = [r for r in network.rows if r.extra.get("binds") == name.name and r.line == where.line]
    shown = [f"`{'x'.join(map(str, r.out_shape))}` · RF {describe_field(r.rf)}" for r in rows]
    if len(set(shown)) == 1:
        return f"{head}\n\n{shown[0]}"
    return "\n".join([head] + [f"- `{r.scopes[0] if r.scopes else '-'}`: {s}" for r, s in zip(rows, shown)][:SHOWN_INSTANCES])


def comment_start(text: str) -> int | None:
    """The 1-based column of the line's `#` comment (outside strings), if it has one."""
    from cnnspec.frontend.formatter import find_comments

    found = find_comments([text])
    # the comment runs to the end of the line, its trailing spaces stripped
    return len(text.rstrip()) - len(found[0].text) + 1 if found else None


def figures_line(f: Figures) -> str:
    """`64x56x56 · 36,864 params · 115.6M MACs · RF 35 · 784.0 kB` as the summary counts them."""
    return (f"`{f.shape}` · {f.params:,} params · {f.macs:,} MACs · RF {f.rf} · "
            f"{_size(f.activation_bytes)} fp32")


def describe_site(site: Site) -> str:
    first = site.instances[0]
    what = {"layer": first.kind, "merge": first.kind, "call": f"block `{first.kind}`", "group": "group"}[site.what]
    if len(site.instances) == 1:
        return f"**{what}** `{first.path or '-'}`\n\n{figures_line(first)}"
    lines = [f"**{what}**, {len(site.instances)} instances"]
    lines += [f"- `{f.path or '-'}`: {figures_line(f)}" for f in site.instances[:SHOWN_INSTANCES]]
    if len(site.instances) > SHOWN_INSTANCES:
        lines.append(f"- and {len(site.instances) - SHOWN_INSTANCES} more")
    return "\n".join(lines)


def _word_hover(result, word: str) -> list[str]:
    from cnnspec.layers import REGISTRY

    program = result.program
    if program is not None and word in program.blocks:
        return [block_signature(result, program.blocks[word])]
    if word in REGISTRY:
        return [f"```\n{layer_entry(word)}\n```"]
    return []


def block_signature(result, block) -> str:
    """`block basic(c, stride=1)` and the comment lines right above the definition."""
    lines = _file_lines(result, block.span.file)
    header = lines[block.span.line - 1] if block.span.line <= len(lines) else f"block {block.name}"
    header = header.split("{")[0].strip()
    comment = []
    number = block.span.line - 2
    while 0 <= number < len(lines) and lines[number].strip().startswith("#"):
        comment.insert(0, lines[number].strip().lstrip("#").strip())
        number -= 1
    return f"```cnn\n{header}\n```" + (f"\n\n{' '.join(comment)}" if comment else "")


def _file_lines(result, file: str) -> list[str]:
    if file == result.path:
        return result.lines
    if file in result.texts:
        return result.texts[file].split("\n")
    return dict(result.sources.files()).get(file, [])


def layer_entry(name: str) -> str:
    """A kind's entry, as `cnnspec layers` prints it."""
    from cnnspec.layers import REGISTRY, option_names, usage

    kind = REGISTRY[name]
    fields = option_names(name)
    entry = f"{kind.family}: {usage(name)}\n{kind.summary}"
    return entry + (f"\noptions: {', '.join(fields)}" if fields else "")


def _code_hover(text: str, column: int) -> types.Hover | None:
    for match in CODE.finditer(text):
        if match.start() < column <= match.end() and match.group() in CODES:
            page = first_paragraph(match.group())
            return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=page))
    return None


def first_paragraph(code: str) -> str:
    """The title and the first paragraph of a code's page."""
    severity, title = CODES[code]
    page = page_path(code)
    head = f"**{code}** ({severity}): {title}"
    if not page.exists():
        return head
    paragraph = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            if paragraph:
                break
            continue
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    return f"{head}\n\n{' '.join(paragraph)}"
