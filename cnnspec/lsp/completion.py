"""Completion from the text before the cursor: layer kinds, keywords, blocks and named values where
a statement starts; a kind's options and their value sets (from the layer registry's parameter
models); a block's parameters inside its call; named values as the operands of `add(`, `scale(`,
`concat(`, after `output` and as `upsample size=`; the labels above after `use`, and inside `use LABEL(`
the values and the value parameters of the block it calls; `in.c` ...;
import paths in the spec's folder tree."""

from __future__ import annotations

import itertools
import re
import typing
from pathlib import Path

from lsprotocol import types

from cnnspec.analysis.values import value_mentions, value_parameters
from cnnspec.layers import REGISTRY, option_names
from cnnspec.lsp.navigation import every_name

KEYWORDS = ("network", "input", "output", "import", "block", "residual", "shortcut", "concat", "add", "scale",
            "when", "else", "expect", "use")
#: the merges whose parentheses hold named values
VALUE_MERGES = ("add", "scale", "concat")
IN_ATTRIBUTES = {"c": "channels", "h": "height", "w": "width", "l": "length", "d": "depth", "rank": "spatial rank"}
#: most import paths offered
MAX_PATHS = 200

LABEL = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*(\{\})?\s*:(?!=)")


def value_set(kind, option: str) -> list[str]:
    """The words an option accepts: its `Literal` values, and `true`/`false` for a flag."""
    fields = kind.Params.model_fields
    field = fields.get(option) or fields.get(option + "_")
    if field is None:
        return []
    values: list[str] = []
    stack = [field.annotation]
    while stack:
        annotation = stack.pop(0)
        if annotation is bool:
            values += ["true", "false"]
        elif typing.get_origin(annotation) is typing.Literal:
            values += [str(v) for v in typing.get_args(annotation)]
        else:
            stack.extend(typing.get_args(annotation))
    return list(dict.fromkeys(values))


def program_without_line(path: str, lines: list[str], line0: int, texts: dict[str, str]):
    """The blocks the spec sees, parsed with the line being typed left out (its braces kept, so
    the nesting stays whole): that line rarely parses yet."""
    from cnnspec.lsp.checking import parse_program

    kept = list(lines)
    if 0 <= line0 < len(kept):
        kept[line0] = "".join(char for char in kept[line0].split("#")[0] if char in "{}")
    return parse_program(path, "\n".join(kept), texts)


def same_but_line(before: list[str], now: list[str], line0: int) -> bool:
    """Whether two texts' lines differ at most on line `line0` (0-based): then a parse of `before`
    sees the blocks of `program_without_line(now)`, in the same places, but for what line `line0`
    held before (a block's header being retyped keeps its old parameters)."""
    return (len(before) == len(now) and before[:line0] == now[:line0]
            and before[line0 + 1:] == now[line0 + 1:])


def complete(lines: list[str], positions, position: types.Position, path: str, program) -> list[types.CompletionItem]:
    line, column = positions.place(position)
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    before = text[:column - 1]
    if (m := re.search(r'\bimport\s+"([^"]*)$', before)) is not None:
        return import_paths(path, m.group(1))
    if "#" in before:
        return []
    if re.search(r"\bin\.\w*$", before):
        return [_item(name, types.CompletionItemKind.Property, f"the block's input {what}")
                for name, what in IN_ATTRIBUTES.items()]
    blocks = program.blocks if program is not None else {}
    label = _open_call(before)
    if label and re.search(rf"\buse\s+{re.escape(label)}\s*\([^()]*$", before):
        # `use LABEL(` holds values alone, so its commas separate values, not items
        return _applied_again(program, path, line, label)
    segment = _statement_before(before)
    call = _open_call(segment)
    if call is not None:
        if re.match(r"\s*(\w+\s*=\s*)?(\w+\s*->\s*)?(add|scale|concat)\b", segment) and call in VALUE_MERGES + ("crop",):
            return _values(program, path, line)
        return _call_arguments(blocks.get(call), _params_in_scope(program, path, line))
    segment = re.sub(r"^\s*[A-Za-z_]\w*\s*=(?!=)", "", segment)  # a binding, `p4 = `
    segment = re.sub(r"^\s*[A-Za-z_]\w*\s*->", "", segment)  # a source, `c2 -> `
    segment = LABEL.sub("", segment)
    words = segment.split()
    if words[:1] == ["output"]:
        return _values(program, path, line)
    if words[:1] == ["use"] and (len(words) == 1 or not segment[-1:].isspace()):
        return _labels(program, path, line)
    if not words or (len(words) == 1 and not segment[-1:].isspace()):
        return _statement_starts(blocks) + _values(program, path, line)
    kind = REGISTRY.get(words[0].lstrip("*"))
    if kind is None:
        return []
    current = "" if segment[-1:].isspace() else words[-1]
    if "=" in current:
        option = current.split("=")[0]
        values = [_item(v, types.CompletionItemKind.EnumMember, f"{option}={v}") for v in value_set(kind, option)]
        if option == getattr(kind, "size_from_value", None):
            values += _values(program, path, line)
        return values
    given = {w.split("=")[0] for w in words[1:]}
    items = [_item(f"{name}=", types.CompletionItemKind.Property, f"option of `{words[0]}`", name)
             for name in option_names(kind.name) if name not in given]
    items += [_item(flag, types.CompletionItemKind.Keyword, f"flag of `{words[0]}`") for flag in kind.flags
              if flag not in given]
    items += [_item(p, types.CompletionItemKind.Variable, "block parameter")
              for p in _params_in_scope(program, path, line)]
    return items


def _item(label: str, kind, detail: str = "", filter_text: str | None = None) -> types.CompletionItem:
    return types.CompletionItem(label=label, kind=kind, detail=detail or None, filter_text=filter_text)


def _statement_before(before: str) -> str:
    """The text of the item being written: after the last `;`, `{`, `}` or top-level `,`."""
    depth = 0
    for index in range(len(before) - 1, -1, -1):
        char = before[index]
        if char in ")]":
            depth += 1
        elif char in "([":
            if depth == 0:
                continue
            depth -= 1
        elif depth == 0 and char in ";{},":
            return before[index + 1:]
    return before


def _open_call(segment: str) -> str | None:
    """The name before the innermost `(` still open, if any."""
    depth = 0
    for index in range(len(segment) - 1, -1, -1):
        char = segment[index]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth == 0:
                name = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", segment[:index])
                return name.group(1) if name else ""
            depth -= 1
    return None


def _call_arguments(block, params_in_scope) -> list[types.CompletionItem]:
    items = []
    if block is not None:
        for param in block.params:
            items.append(_item(f"{param.name}=", types.CompletionItemKind.Property,
                               f"parameter of `{block.name}`", param.name))
    items += [_item(p, types.CompletionItemKind.Variable, "block parameter") for p in params_in_scope]
    items.append(_item("in.", types.CompletionItemKind.Module, "the block's input shape"))
    return items


def _params_in_scope(program, path: str, line: int) -> list[str]:
    """The parameters of the block of this file whose definition holds `line`."""
    if program is None:
        return []
    for block in program.blocks.values():
        if block.span.file == path and block.span.line <= line <= block.span.end_line:
            return [p.name for p in block.params]
    return []


def _above_in_module(program, path: str, line: int):
    """Whether a span of this file lies above `line` in its module: in the block whose body holds
    `line`, else at the top level, outside every block."""
    body = next((b.span for b in program.blocks.values() if b.span.file == path and b.span.line <= line <= b.span.end_line),
                None)
    inside_blocks = [b.span for b in program.blocks.values() if b.span.file == path]

    def visible(span) -> bool:
        if span.file != path or span.line >= line:
            return False
        if body is not None:
            return body.line <= span.line <= body.end_line
        return not any(b.line <= span.line <= b.end_line for b in inside_blocks)

    return visible


def _values(program, path: str, line: int) -> list[types.CompletionItem]:
    """The named values bound above `line` in its module (the network's inputs included)."""
    if program is None:
        return []
    visible = _above_in_module(program, path, line)
    names = dict.fromkeys(m.name for m in value_mentions(program.spec, program.blocks.values())
                          if m.binding and visible(m.span))
    return [_item(name, types.CompletionItemKind.Variable, "named value") for name in names]


def _applied_again(program, path: str, line: int, label: str) -> list[types.CompletionItem]:
    """Inside `use LABEL(`, where a labelled call of a block over values is applied to other
    values: the named values above, and the value parameters of the block it calls, by name."""
    items = _values(program, path, line)
    block = _labelled_block(program, path, line, label)
    if block is not None:
        passed = value_parameters(block)
        items += [_item(f"{param.name}=", types.CompletionItemKind.Property, f"value parameter of `{block.name}`",
                        param.name) for param in block.params if param.name in passed]
    return items


def _labelled_block(program, path: str, line: int, label: str):
    """The block that the call labelled `label` above `line`, in its module, calls."""
    if program is None:
        return None
    visible = _above_in_module(program, path, line)
    body = next((b.body.body for b in program.blocks.values() if b.span.file == path
                 and b.span.line <= line <= b.span.end_line), None)
    for statement in program.spec.statements if body is None else body:
        if (statement.node == "items" and statement.label == label and visible(statement.span)
                and len(statement.chain) == 1 and statement.chain[0].node == "call"):
            return program.blocks.get(statement.chain[0].name)
    return None


def _labels(program, path: str, line: int) -> list[types.CompletionItem]:
    """The labels written above `line` in its module, as `use LABEL` names them."""
    if program is None:
        return []
    visible = _above_in_module(program, path, line)
    names = dict.fromkeys(n.name for n in every_name(program) if n.what == "label" and visible(n.span))
    return [_item(name, types.CompletionItemKind.Module, "labelled module") for name in names]


def _statement_starts(blocks) -> list[types.CompletionItem]:
    items = [_item(name, types.CompletionItemKind.Function, kind.summary) for name, kind in sorted(REGISTRY.items())]
    items += [_item(word, types.CompletionItemKind.Keyword) for word in KEYWORDS]
    for name, block in sorted(blocks.items()):
        signature = ", ".join(p.name for p in block.params)
        items.append(types.CompletionItem(
            label=name, kind=types.CompletionItemKind.Module, detail=f"block {name}({signature})",
            insert_text=f"{name}(" + ", ".join(f"${{{i}:{p.name}}}" for i, p in enumerate(block.params, 1)) + ")",
            insert_text_format=types.InsertTextFormat.Snippet))
    return items


def import_paths(path: str, typed: str) -> list[types.CompletionItem]:
    """`.cnn` files under the spec's folder (imports may not leave it), relative to it."""
    folder = Path(path).parent
    items = []
    try:
        # bounded: an unsaved buffer's folder may be a home folder
        candidates = sorted(itertools.islice(folder.rglob("*.cnn"), 10 * MAX_PATHS))
    except OSError:
        return []
    for candidate in candidates:
        if candidate.resolve() == Path(path).resolve():
            continue
        relative = candidate.relative_to(folder).as_posix()
        if relative.startswith(typed.rsplit("/", 1)[0] if "/" in typed else ""):
            items.append(_item(relative, types.CompletionItemKind.File))
        if len(items) >= MAX_PATHS:
            break
    return items
