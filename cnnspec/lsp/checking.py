"""A check of an open document, as `cnnspec check` runs it, with unsaved text in place of files.

The loader reads every file through `cnnspec.frontend.loader.read_source`; while a check runs,
`unsaved_text` serves the open documents' text instead (the document itself and any file it
imports), so an import sees what the editor shows. The limits, suppressions and
`[tool.cnnspec]` are those of `cnnspec.network.check` with the spec's own configuration.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, SourceMap
from cnnspec.frontend import loader

_overlay = threading.local()
_original_read_source = loader.read_source


def _read_source(path: Path, shown: str, *args, **kwargs) -> str:
    texts = getattr(_overlay, "texts", None) or {}
    text = texts.get(str(Path(path).resolve()))
    return text if text is not None else _original_read_source(path, shown, *args, **kwargs)


@contextmanager
def unsaved_text(texts: dict[str, str]):
    """Files (absolute paths) read from `texts` instead of the disk in this thread."""
    loader.read_source = _read_source
    _overlay.texts = texts
    try:
        yield
    finally:
        _overlay.texts = None


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

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @cached_property
    def program(self):
        """The parsed spec with the blocks it can see, or None when the text does not parse."""
        return parse_program(self.path, self.text, self.texts)

    @cached_property
    def index(self):
        from cnnspec.lsp.sites import SiteIndex

        return SiteIndex.build(self.network, self.path)

    texts: dict[str, str] = field(default_factory=dict)


def parse_program(path: str, text: str, texts: dict[str, str]):
    """The parsed text with every block it can see (imports read as `unsaved_text` serves them),
    or None when it does not parse."""
    from cnnspec.diagnostics import SpecError

    try:
        with unsaved_text(texts):
            return loader.program_from_text(text, path, root=Path(path).parent, origin=Path(path))
    except (SpecError, RecursionError):
        return None


def check_document(path: str, texts: dict[str, str]) -> Checked:
    """Check the document at `path` (absolute) with `texts` for the open documents."""
    from cnnspec.config import ConfigError, config_for
    from cnnspec.network import check

    text = texts.get(path, "")
    try:
        config = config_for(path)
    except ConfigError as error:
        problem = Diagnostic(code=Code.UNUSABLE_CONFIG, message=str(error))
        return Checked(path, text, None, [problem], SourceMap(), {path}, texts)
    try:
        with unsaved_text(texts):
            network, diagnostics, sources = check(path, config=config, libraries=True)
    except RecursionError:
        problem = Diagnostic(code=Code.SPEC_TOO_LARGE, message="the spec is nested too deeply to check")
        return Checked(path, text, None, [problem], SourceMap(), {path}, texts)
    except Exception as error:  # noqa: BLE001  a bug in the checker must not stop the server answering
        problem = Diagnostic(code=Code.INTERNAL, message=f"cnnspec failed on this spec: {type(error).__name__}: {error}",
                             help="please report it with the spec")
        return Checked(path, text, None, [problem], SourceMap(), {path}, texts)
    files = {name for name, _ in sources.files()} | {path}
    return Checked(path, text, network, diagnostics, sources, files, texts)
