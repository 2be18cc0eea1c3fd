"""A check of an open document, as `cnnspec check` runs it, with unsaved text in place of files.

The loader reads the open documents' text (`texts=`) in place of their files: the document
itself and any file it imports, so an import sees what the editor shows. The limits,
suppressions and `[tool.cnnspec]` are those of `cnnspec.network.check` with the spec's own
configuration. The spec is parsed once per check: the check, the outline, definitions and
renames all read that one parse; of a document's text, only the parts an edit changed are
parsed again (`cnnspec.frontend.parser.ParsedParts`).

The server keeps each document's latest result, and a 10,000-layer spec's is some 400,000
objects: every full pass of the cyclic garbage collector walked all of them (1.2 s), and one
followed each check. A check makes no reference cycles, so what the server keeps is built with
the collector paused and then frozen out of its reach (`kept`); reference counting frees it
when it is dropped, and every `CHECKS_PER_COLLECTION` checks one full pass collects whatever
cycles the rest of the server left.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, SourceMap, SpecError
from cnnspec.frontend import loader

#: checks between two full passes of the cyclic garbage collector
CHECKS_PER_COLLECTION = 25
_kept_since_collection = 0
#: each open document's parts as last parsed, so a keystroke's re-check parses the part it changed
#: alone (`ParsedParts`); used from the checking thread only
_parts: dict[str, loader.ParsedParts] = {}


def kept(work, *args):
    """`work(*args)`, for a result the server keeps: run with the collector paused, then frozen
    (`gc.freeze`) so later collections do not walk it. Called from the checking thread only."""
    global _kept_since_collection
    from cnnspec.network import collector_paused

    with collector_paused():
        if _kept_since_collection >= CHECKS_PER_COLLECTION:
            gc.unfreeze()
            gc.collect()
            _kept_since_collection = 0
        result = work(*args)
        _kept_since_collection += 1
        gc.freeze()
    return result


@dataclass
class Checked:
    """One check of one document: what `cnnspec.network.check` returned for its text."""

    path: str
    text: str
    network: object | None  # a Network, a Library, or None when the spec has errors
    diagnostics: list[Diagnostic]
    sources: SourceMap
    #: files read, the document's own included (absolute paths)
    files: set[str] = field(default_factory=set)
    #: the parsed spec with the blocks it can see, or None when the text does not parse
    program: loader.Program | None = None
    #: the open documents' text the check read, by absolute path
    texts: dict[str, str] = field(default_factory=dict)

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @cached_property
    def index(self):
        from cnnspec.lsp.sites import SiteIndex

        return SiteIndex.build(self.network, self.path)


def parse_program(path: str, text: str, texts: dict[str, str]) -> loader.Program | None:
    """`text` parsed as the document at `path`, with every block it can see (imports read from
    `texts` where they are open), or None when it does not parse."""
    try:
        return loader.program_from_text(text, path, root=Path(path).parent, origin=Path(path), texts=texts)
    except (SpecError, RecursionError):
        return None


def check_document(path: str, texts: dict[str, str]) -> Checked:
    """Check the document at `path` (absolute) with `texts` for the open documents."""
    from cnnspec.config import ConfigError, config_for
    from cnnspec.network import check_program, collector_paused, resolve_limits

    text = texts.get(path, "")

    def failed(problem: Diagnostic) -> Checked:
        return Checked(path, text, None, [problem], SourceMap(), {path}, texts=texts)

    try:
        config = config_for(path)
    except ConfigError as error:
        return failed(Diagnostic(code=Code.UNUSABLE_CONFIG, message=str(error)))
    limits = resolve_limits(None, config)
    for closed in set(_parts) - set(texts):
        del _parts[closed]
    try:
        try:
            with collector_paused():
                program = loader.load_program(path, limits.max_tokens, limits.max_layers, texts=texts,
                                              reuse=_parts.setdefault(path, loader.ParsedParts()))
        except SpecError as error:
            return Checked(path, text, None, error.diagnostics, error.sources,
                           {name for name, _ in error.sources.files()} | {path}, texts=texts)
        network, diagnostics, sources = check_program(program, path, limits=limits, config=config, libraries=True)
    except RecursionError:
        return failed(Diagnostic(code=Code.SPEC_TOO_LARGE, message="the spec is nested too deeply to check"))
    except Exception as error:  # noqa: BLE001  a bug in the checker must not stop the server answering
        return failed(Diagnostic(code=Code.INTERNAL,
                                 message=f"cnnspec failed on this spec: {type(error).__name__}: {error}",
                                 help="please report it with the spec"))
    files = {name for name, _ in sources.files()} | {path}
    return Checked(path, text, network, diagnostics, sources, files, program, texts)
