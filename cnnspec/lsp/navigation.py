"""Definitions, references, the outline and renames, read from the parsed spec (the IR's spans).

A block is defined once among the files a spec sees (itself and its imports) and used by its
calls; a label names one layer or group of its scope; an import's path leads to its file; a
named value is bound by a statement (or an input declaration) and read below it in its module,
each read paired with its binding by `cnnspec.analysis.values.value_mentions`.
"""

from __future__ import annotations

import re
import typing
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types
from pydantic import BaseModel

from cnnspec import ir
from cnnspec.analysis.values import value_mentions
from cnnspec.frontend.build import label_problem
from cnnspec.frontend.printer import BARE_LABEL, label_text
from cnnspec.lsp.convert import path_to_uri

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Name:
    """One occurrence of a name: a block's definition or call, a label, an import, a value."""

    what: str  # "block", "call", "label", "import" or "value"
    name: str
    span: ir.Span
    #: for a value, where the value it names is bound (None: a read that nothing binds)
    bound_at: ir.Span | None = None


#: nodes that hold no block, call, label or import: their fields are not walked (a layer's
#: arguments and options, expressions, spans), which keeps the outline of a 10,000-layer spec quick
LEAVES = (ir.Layer, ir.Call, ir.Span, ir.Option, ir.NetworkDecl, ir.InputDecl, ir.Import, ir.ExpectShape,
          ir.ExpectMetric, *typing.get_args(typing.get_args(ir.Expr)[0]))


def parts(node) -> list:
    """The IR nodes directly under `node` (none under a leaf), in source order."""
    if isinstance(node, LEAVES):
        return []
    found = []
    for name in type(node).model_fields:
        value = getattr(node, name)
        if isinstance(value, BaseModel):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(v for v in value if isinstance(v, BaseModel))
    return found


def walk(node):
    """Every IR node under `node`, itself first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(parts(current)))


def names_in(node) -> list[Name]:
    found = []
    for n in walk(node):
        if isinstance(n, ir.BlockDef):
            found.append(Name("block", n.name, n.name_span))
            found += [Name("call", p.default.name, p.default.span) for p in n.params
                      if p.default is not None and p.default.node == "ref" and p.default.attr is None]
        elif isinstance(n, ir.Call):
            found.append(Name("call", n.name, n.name_span))
            # a block passed by name (`stage(basic, 64)`) is a use of it
            found += [Name("call", e.name, e.span) for e in (*n.args, *(o.value for o in n.options))
                      if e.node == "ref" and e.attr is None]
        elif isinstance(n, (ir.ItemStatement, ir.Shortcut)) and n.label and n.label_span is not None:
            found.append(Name("label", n.label, n.label_span))
        elif isinstance(n, ir.Import):
            found.append(Name("import", n.path, n.span))
    return found


def every_name(program) -> list[Name]:
    """The names of the spec and of every block it sees (imported blocks included), once each."""
    found = names_in(program.spec)
    seen = {(n.span.file, n.span.line, n.span.column) for n in found}
    for block in program.blocks.values():
        for n in names_in(block):
            if (n.span.file, n.span.line, n.span.column) not in seen:
                seen.add((n.span.file, n.span.line, n.span.column))
                found.append(n)
    found += [Name("value", m.name, m.span, m.bound_at) for m in value_mentions(program.spec, program.blocks.values())]
    return found


def _inside(span: ir.Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


def name_at(result, positions, position: types.Position) -> Name | None:
    program = result.program
    if program is None:
        return None
    line, column = positions(result.lines).place(position)
    under = [n for n in every_name(program) if n.span.file == result.path and _inside(n.span, line, column)]
    return min(under, key=lambda n: (n.span.end_line - n.span.line, n.span.end_column - n.span.column), default=None)


def _location(result, positions, span: ir.Span) -> types.Location:
    return types.Location(uri=path_to_uri(span.file), range=positions(_lines(result, span.file)).range(span))


def _lines(result, file: str) -> list[str]:
    if file == result.path:
        return result.lines
    if file in result.texts:
        return result.texts[file].split("\n")
    lines = dict(result.sources.files()).get(file)
    if lines is None:
        try:
            lines = Path(file).read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            lines = []
    return lines


def import_target(result, name: Name) -> Path:
    return (Path(name.span.file).parent / name.name).resolve()


def definition(result, positions, position: types.Position):
    name = name_at(result, positions, position)
    if name is None:
        return None
    if name.what == "import":
        target = import_target(result, name)
        if not target.is_file():
            return None
        start = types.Position(line=0, character=0)
        return types.Location(uri=target.as_uri(), range=types.Range(start=start, end=start))
    if name.what in ("call", "block"):
        block = result.program.blocks.get(name.name)
        return _location(result, positions, block.name_span) if block is not None else None
    if name.what == "value":
        return _location(result, positions, name.bound_at) if name.bound_at is not None else None
    return _location(result, positions, name.span)


def _uses(result, name: Name) -> list[Name]:
    """Every occurrence of what `name` names: a block's definition and calls, or the label itself."""
    if name.what in ("call", "block"):
        return [n for n in every_name(result.program) if n.what in ("call", "block") and n.name == name.name]
    if name.what == "value":
        if name.bound_at is None:
            return [name]
        return [n for n in every_name(result.program) if n.what == "value" and n.bound_at == name.bound_at]
    return [name]


def references(result, positions, position: types.Position, include_declaration: bool = True):
    name = name_at(result, positions, position)
    if name is None:
        return []
    uses = _uses(result, name)
    if not include_declaration:
        uses = [n for n in uses if n.what not in ("block", "label") and not (n.what == "value" and n.span == n.bound_at)]
    return [_location(result, positions, n.span) for n in uses]


def prepare_rename(result, positions, position: types.Position):
    name = name_at(result, positions, position)
    if name is None or name.what == "import" or (name.what == "value" and name.bound_at is None):
        return None
    if name.what == "call" and name.name not in result.program.blocks:
        return None  # a layer written with parentheses, or an unknown block
    return positions(result.lines).range(name.span)


def rename(result, positions, position: types.Position, new_name: str):
    if prepare_rename(result, positions, position) is None:
        return None
    name = name_at(result, positions, position)
    text = new_name
    if name.what == "label":
        # any state_dict key: quoted where the grammar needs it (`"block1-0"`)
        if not BARE_LABEL.fullmatch(new_name) and (label_problem(new_name) or '"' in new_name or "\n" in new_name):
            raise ValueError(f"`{new_name}` cannot be a label")
        text = label_text(new_name)
    elif not IDENTIFIER.match(new_name):
        raise ValueError(f"`{new_name}` is not a name")
    if name.what in ("call", "block"):
        from cnnspec.layers import REGISTRY

        if new_name in REGISTRY or (new_name in result.program.blocks and new_name != name.name):
            raise ValueError(f"`{new_name}` is already a layer kind or a block")
    changes: dict[str, list[types.TextEdit]] = {}
    for n in _uses(result, name):
        changes.setdefault(path_to_uri(n.span.file), []).append(
            types.TextEdit(range=positions(_lines(result, n.span.file)).range(n.span), new_text=text))
    return types.WorkspaceEdit(changes=changes)


def symbols(result, positions) -> list[types.DocumentSymbol]:
    """The outline: blocks with their labels and calls, and the network's labels and calls."""
    program = result.program
    if program is None:
        return []
    out = []
    for statement in program.spec.statements:
        if isinstance(statement, ir.BlockDef):
            out.append(_symbol(positions, statement.name, types.SymbolKind.Function, statement.span,
                               statement.name_span, _children(positions, statement.body)))
        elif isinstance(statement, ir.Import):
            out.append(_symbol(positions, statement.path, types.SymbolKind.File, statement.span, statement.span))
        elif isinstance(statement, ir.ItemStatement):
            out += _item_symbols(positions, statement)
    return out


def _item_symbols(positions, statement: ir.ItemStatement) -> list[types.DocumentSymbol]:
    children = []
    for item in statement.chain:
        children += _children(positions, item)
    if statement.label and statement.label_span is not None:
        return [_symbol(positions, statement.label, types.SymbolKind.Field, statement.span, statement.label_span,
                        children)]
    return children


def _children(positions, node) -> list[types.DocumentSymbol]:
    """Labels and calls directly under `node` (each label's own nest under it)."""
    out = []
    queue = deque([node])
    while queue:
        current = queue.popleft()
        if isinstance(current, ir.ItemStatement):
            out += _item_symbols(positions, current)
        elif isinstance(current, ir.Call):
            out.append(_symbol(positions, f"{'*' if current.splice else ''}{current.name}()", types.SymbolKind.Module,
                               current.span, current.name_span))
        elif isinstance(current, ir.Shortcut) and current.label and current.label_span is not None:
            out.append(_symbol(positions, current.label, types.SymbolKind.Field, current.span, current.label_span,
                               _children(positions, current.body)))
        else:
            queue.extend(parts(current))
    return out


def _symbol(positions, name, kind, span, selection, children=None) -> types.DocumentSymbol:
    full = positions.range(span)
    chosen = positions.range(selection)
    return types.DocumentSymbol(name=name, kind=kind, range=full, selection_range=chosen, children=children or None)


def first_import_span(result) -> ir.Span | None:
    """Where diagnostics from imported files are shown: the first import of the document."""
    for line_number, line in enumerate(result.lines, start=1):
        stripped = line.lstrip()
        if stripped.startswith("import ") or stripped.startswith('import"'):
            column = len(line) - len(stripped) + 1
            return ir.Span(file=result.path, line=line_number, column=column, end_line=line_number,
                           end_column=len(line.split("#")[0].rstrip()) + 1)
    return None
