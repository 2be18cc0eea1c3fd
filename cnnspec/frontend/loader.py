"""Read spec files and their imports, confined to the top file's folder tree.

An import brings the blocks of another file. Its path is relative to the importing file and
must stay inside the folder of the spec being loaded (symbolic links resolved); cycles are
reported with the chain of files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cnnspec import ir
from cnnspec.diagnostics import Diagnostic, Label, SourceMap, SpecError
from cnnspec.frontend.parser import MAX_SOURCE_BYTES, parse_text
from cnnspec.resources import zoo_dir

ZOO_PREFIX = "zoo:"


@dataclass
class Program:
    """A top file with every block it can see, and the diagnostics found while reading."""

    spec: ir.SpecFile
    blocks: dict[str, ir.BlockDef] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: SourceMap = field(default_factory=SourceMap)


def resolve_name(path: str | os.PathLike) -> Path:
    """`zoo:resnet50` -> the zoo's spec file; anything else is a path."""
    text = str(path)
    if text.startswith(ZOO_PREFIX):
        return zoo_dir() / f"{text[len(ZOO_PREFIX):]}.cnn"
    return Path(text)


def read_source(path: Path, shown: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise SpecError([Diagnostic(code="E012", severity="error",
                                        message=f"`{shown}` is too large ({size:,} bytes; the limit is {MAX_SOURCE_BYTES:,})")])
        return path.read_text(encoding="utf-8")
    except SpecError:
        raise
    except UnicodeDecodeError:
        raise SpecError([Diagnostic(code="E132", severity="error", message=f"`{shown}` is not UTF-8 text")]) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise SpecError([Diagnostic(code="E132", severity="error",
                                    message=f"cannot read `{shown}`: {reason.lower()}")]) from None


def load_program(path: str | os.PathLike) -> Program:
    shown = str(path)
    real = resolve_name(path)
    if shown.startswith(ZOO_PREFIX) and not real.exists():
        from cnnspec.analysis.expressions import closest
        from cnnspec.zoo import zoo_names

        names = zoo_names()
        near = closest(shown[len(ZOO_PREFIX):], names)
        raise SpecError([Diagnostic(code="E132", severity="error", message=f"no zoo network `{shown[len(ZOO_PREFIX):]}`",
                                    help=f"did you mean `zoo:{near}`?" if near else "run `cnnspec zoo list`")])
    if shown.startswith(ZOO_PREFIX):
        shown = str(real)
    text = read_source(real, shown)
    return program_from_text(text, shown, root=real.resolve().parent, origin=real.resolve())


def program_from_text(text: str, shown: str, root: Path, origin: Path | None = None) -> Program:
    """A parsed spec and its imports. `origin` is the file the text is read from (imports are relative
    to its folder); by default `shown` taken relative to `root`."""
    sources = SourceMap()
    sources.add(shown, text)
    try:
        spec = parse_text(text, shown)
    except SpecError as error:
        raise SpecError(error.diagnostics, sources) from None
    program = Program(spec=spec, sources=sources)
    if origin is None:
        origin = root / ("<string>" if shown.startswith("<") else shown)
    _collect(program, spec, origin, root, stack=(origin,))
    return program


def _collect(program: Program, spec: ir.SpecFile, origin: Path, root: Path, stack: tuple[Path, ...]) -> None:
    """Add the blocks of `spec`, then of its imports, reporting duplicates, escapes and cycles."""
    for st in spec.statements:
        if st.node == "block":
            _add_block(program, st)
    for st in spec.statements:
        if st.node != "import":
            continue
        target = (origin.parent / st.path).resolve()
        shown = os.path.normpath(os.path.join(os.path.dirname(spec.path), st.path))
        if not target.is_relative_to(root):
            program.diagnostics.append(Diagnostic(
                code="E130", severity="error", message=f"`{st.path}` is outside the spec's folder tree", span=st.span,
                label="imports must stay inside this folder",
                help="a spec may import only files in its own folder or below it; move the file there"))
            continue
        if target in stack:
            chain = " -> ".join(f"`{p.name}`" for p in stack[stack.index(target):] + (target,))
            program.diagnostics.append(Diagnostic(code="E131", severity="error", message=f"import cycle: {chain}",
                                                  span=st.span, label="this import closes the cycle",
                                                  help="move the shared blocks into a file that imports neither"))
            continue
        if not target.is_file():
            program.diagnostics.append(Diagnostic(code="E132", severity="error", message=f"cannot find `{st.path}`",
                                                  span=st.span, label="no such file",
                                                  help="import paths are relative to the importing file"))
            continue
        try:
            text = read_source(target, shown)
            program.sources.add(shown, text)
            imported = parse_text(text, shown)
        except SpecError as error:
            program.diagnostics.extend(error.diagnostics)
            continue
        _collect(program, imported, target, root, stack + (target,))


def _add_block(program: Program, block: ir.BlockDef) -> None:
    first = program.blocks.get(block.name)
    if first is not None:
        program.diagnostics.append(Diagnostic(
            code="E123", severity="error", message=f"block `{block.name}` is defined twice", span=block.name_span,
            label="second definition", labels=(Label(span=first.name_span, message="first defined here"),),
            help="rename one of them"))
        return
    from cnnspec.layers import REGISTRY

    if block.name in REGISTRY:
        program.diagnostics.append(Diagnostic(
            code="E123", severity="error", message=f"block `{block.name}` has the name of a layer kind",
            span=block.name_span, label="shadows the layer", help="choose another name"))
        return
    program.blocks[block.name] = block
