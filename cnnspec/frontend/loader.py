"""Read spec files and their imports, confined to the top file's folder tree.

An import brings the blocks of another file. Its path is relative to the importing file and
must stay inside the folder of the spec being loaded (symbolic links resolved); cycles are
reported with the chain of files. Only regular files are read, and at most `MAX_SOURCE_BYTES`
of them: a device (`/dev/zero`) reports no size and never ends, a FIFO blocks until a writer
comes.

`texts` maps files (by path, resolved as the loader resolves them) to text read in their
place: an editor's unsaved documents, or a spec and its imports held in memory. A file named
there is not read from the disk; its text is taken as the file's would be (newlines made
`\n`, the same limits).
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cnnspec import ir
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, Label, SourceMap, SpecError
from cnnspec.frontend.parser import MAX_SOURCE_BYTES, MAX_TOKENS, ParsedParts, parse_text

ZOO_PREFIX = "zoo:"
#: opening a FIFO to read waits for a writer unless it is opened non-blocking (POSIX only);
#: Windows opens a descriptor in text mode unless told otherwise
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


@dataclass
class Program:
    """A top file with every block it can see, and the diagnostics found while reading."""

    spec: ir.SpecFile
    blocks: dict[str, ir.BlockDef] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: SourceMap = field(default_factory=SourceMap)


def resolve_name(path: str | os.PathLike) -> Path:
    """`zoo:resnet50` -> the zoo's spec file; anything else is a path. A zoo name is a name:
    `zoo:../specs/x` is no zoo network (E132, with the closest names)."""
    text = os.fspath(path)
    if not text.startswith(ZOO_PREFIX):
        return Path(text)
    from cnnspec.resources import UnknownZooNetwork, zoo_path

    try:
        return zoo_path(text[len(ZOO_PREFIX):])
    except UnknownZooNetwork as error:
        raise SpecError([Diagnostic(code=Code.UNREADABLE_IMPORT, message=f"no zoo network `{printable(error.name)}`",
                                    help=error.help)]) from None


def printable(text: str) -> str:
    """`text` with its control characters escaped, as a message may show them (`a\\x00b`)."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def read_source(path: Path, shown: str, span: ir.Span | None = None, newline: str | None = None) -> str:
    """The text of a regular file of at most `MAX_SOURCE_BYTES`; else `SpecError` (E132, E012) at
    `span`, the import that names it, or for the whole file. Newlines are translated as `open`
    does with `newline` (universal by default; `""` keeps them)."""
    shown = printable(shown)
    try:
        with open(os.open(path, _READ_FLAGS), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                # a folder is refused by `open` itself ("is a directory")
                raise _unreadable(f"`{shown}` is not a regular file", span, label="a device, FIFO or socket",
                                  help="a spec is a `.cnn` text file")
            # a regular file's size can be trusted, but it may grow while it is read
            data = b"" if info.st_size > MAX_SOURCE_BYTES else handle.read(MAX_SOURCE_BYTES + 1)
    except (OSError, ValueError) as error:
        if span is not None and isinstance(error, (FileNotFoundError, NotADirectoryError)):
            raise _unreadable(f"cannot find `{shown}`", span, label="no such file",
                              help="import paths are relative to the importing file") from None
        # ValueError: a NUL byte in the path
        reason = getattr(error, "strerror", None) or str(error)
        raise _unreadable(f"cannot read `{shown}`: {reason.lower()}", span) from None
    _refuse_size(max(info.st_size, len(data)), shown, span)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _unreadable(f"`{shown}` is not UTF-8 text", span) from None
    return text if newline == "" else text.replace("\r\n", "\n").replace("\r", "\n")


#: text to read in place of a file, by resolved path
Overlay = dict[Path, str]


def overlay(texts: Mapping[str | os.PathLike, str] | None) -> Overlay:
    """`texts` keyed by resolved path, as imports are resolved."""
    return {Path(name).resolve(): text for name, text in (texts or {}).items()}


def _text_of(path: Path, shown: str, texts: Overlay, span: ir.Span | None = None) -> str:
    """The file's text from `texts` if it is there (newlines translated as `read_source` does),
    else from the disk."""
    text = None
    if texts:
        try:
            text = texts.get(path.resolve())
        except (OSError, ValueError, RuntimeError):
            pass  # a path the system cannot resolve: `read_source` says why
    if text is None:
        return read_source(path, shown, span)
    # counted as the file's UTF-8 bytes would be (an editor's text may hold lone surrogates)
    _refuse_size(len(text.encode("utf-8", "surrogatepass")), printable(shown), span)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _refuse_size(size: int, shown: str, span: ir.Span | None) -> None:
    if size > MAX_SOURCE_BYTES:
        raise SpecError([Diagnostic(code=Code.SPEC_TOO_LARGE, span=span,
                                    message=f"`{shown}` is too large ({size:,} bytes; the limit is {MAX_SOURCE_BYTES:,})")])


def _unreadable(message: str, span: ir.Span | None, label: str = "", help: str | None = None) -> SpecError:
    return SpecError([Diagnostic(code=Code.UNREADABLE_IMPORT, message=message, span=span,
                                 label=label if span is not None else "", help=help)])


def load_program(path: str | os.PathLike, max_tokens: int = MAX_TOKENS, max_layers: int | None = None,
                 texts: Mapping[str | os.PathLike, str] | None = None, reuse: ParsedParts | None = None) -> Program:
    """The spec at `path` (or `zoo:NAME`) and its imports, parsed; files in `texts` are read from
    there; `reuse` keeps the spec's own parts from one parse to the next (`ParsedParts`)."""
    shown = os.fspath(path)
    real = resolve_name(path)
    if shown.startswith(ZOO_PREFIX):
        shown = str(real)
    texts = overlay(texts)
    text = _text_of(real, shown, texts)
    origin = real.resolve()
    return program_from_text(text, shown, root=origin.parent, origin=origin, max_tokens=max_tokens,
                             max_layers=max_layers, texts=texts, reuse=reuse)


def program_from_text(text: str, shown: str, root: Path, origin: Path | None = None,
                      max_tokens: int = MAX_TOKENS, max_layers: int | None = None,
                      texts: Mapping[str | os.PathLike, str] | None = None, reuse: ParsedParts | None = None) -> Program:
    """A parsed spec and its imports. `origin` is the file the text is read from (imports are relative
    to its folder); by default `shown` taken relative to `root`. Each file may hold `max_tokens`;
    the spec's own file may write `max_layers` (see `parse_text`). Imports named in `texts`
    are read from there."""
    sources = SourceMap()
    sources.add(shown, text)
    try:
        spec = parse_text(text, shown, max_tokens, max_layers, reuse=reuse)
    except SpecError as error:
        raise SpecError(error.diagnostics, sources) from None
    program = Program(spec=spec, sources=sources)
    if origin is None:
        origin = root / ("<string>" if shown.startswith("<") else shown)
    _collect(program, spec, origin, root, stack=(origin,), max_tokens=max_tokens, texts=overlay(texts))
    return program


def _collect(program: Program, spec: ir.SpecFile, origin: Path, root: Path, stack: tuple[Path, ...],
             max_tokens: int = MAX_TOKENS, texts: Overlay | None = None) -> None:
    """Add the blocks of `spec`, then of its imports, reporting duplicates, escapes and cycles."""
    for st in spec.statements:
        if st.node == "block":
            _add_block(program, st)
    for st in spec.statements:
        if st.node != "import":
            continue
        try:
            target = (origin.parent / st.path).resolve()
        except (OSError, ValueError, RuntimeError) as error:
            # a NUL byte (ValueError), a loop of symbolic links (RuntimeError before Python 3.13)
            # or a path the system cannot resolve
            reason = "a loop of symbolic links" if isinstance(error, RuntimeError) else (
                getattr(error, "strerror", None) or str(error))
            program.diagnostics.append(_unreadable(f"cannot read `{printable(st.path)}`: {reason.lower()}", st.span,
                                                   label="not a path this system can open").diagnostics[0])
            continue
        shown = os.path.normpath(os.path.join(os.path.dirname(spec.path), st.path))
        if not target.is_relative_to(root):
            program.diagnostics.append(Diagnostic(
                code=Code.IMPORT_OUTSIDE_TREE, message=f"`{printable(st.path)}` is outside the spec's folder tree", span=st.span,
                label="imports must stay inside this folder",
                help="a spec may import only files in its own folder or below it; move the file there"))
            continue
        if target in stack:
            chain = " -> ".join(f"`{p.name}`" for p in stack[stack.index(target):] + (target,))
            program.diagnostics.append(Diagnostic(code=Code.IMPORT_CYCLE, message=f"import cycle: {chain}",
                                                  span=st.span, label="this import closes the cycle",
                                                  help="move the shared blocks into a file that imports neither"))
            continue
        try:
            # messages at the import name the path as it is written there
            text = _text_of(target, st.path, texts or {}, span=st.span)
            program.sources.add(shown, text)
            imported = _parse_import(text, shown, max_tokens)
        except SpecError as error:
            program.diagnostics.extend(error.diagnostics)
            continue
        _collect(program, imported, target, root, stack + (target,), max_tokens, texts)


@functools.lru_cache(maxsize=64)
def _parse_import(text: str, shown: str, max_tokens: int) -> ir.SpecFile:
    """`parse_text` of an imported file, kept for the next load that reads the same text under
    the same name: an editor's checks read the same imports at every change (ResNet-50's
    `common/resnet.cnn` was a fifth of its check), and the IR is frozen, so one parse serves
    them all. A text that fails to parse raises each time."""
    return parse_text(text, shown, max_tokens)


def _add_block(program: Program, block: ir.BlockDef) -> None:
    program.diagnostics.extend(_repeated_parameters(block))
    first = program.blocks.get(block.name)
    if first is not None:
        program.diagnostics.append(Diagnostic(
            code=Code.DUPLICATE_BLOCK, message=f"block `{block.name}` is defined twice", span=block.name_span,
            label="second definition", labels=(Label(span=first.name_span, message="first defined here"),),
            help="rename one of them"))
        return
    from cnnspec.layers import REGISTRY

    if block.name in REGISTRY:
        program.diagnostics.append(Diagnostic(
            code=Code.DUPLICATE_BLOCK, message=f"block `{block.name}` has the name of a layer kind",
            span=block.name_span, label="shadows the layer", help="choose another name"))
        return
    program.blocks[block.name] = block


def _repeated_parameters(block: ir.BlockDef) -> list[Diagnostic]:
    """E141 at each parameter a block declares again (`block b(c, c)`), pointing at the first."""
    first: dict[str, ir.BlockParam] = {}
    found = []
    for param in block.params:
        earlier = first.setdefault(param.name, param)
        if earlier is not param:
            found.append(Diagnostic(
                code=Code.REPEATED_DECLARATION, message=f"parameter `{param.name}` is declared twice in block `{block.name}`",
                span=_name_span(param), label="second declaration",
                labels=(Label(span=_name_span(earlier), message="first declared here"),),
                help="give each parameter its own name"))
    return found


def _name_span(param: ir.BlockParam) -> ir.Span:
    """A parameter's name: its span runs on over a default (`c=4`)."""
    span = param.span
    return span.model_copy(update={"end_line": span.line, "end_column": span.column + len(param.name)})
