"""The pygls server: open documents, checks as the text changes, and each feature wired to its module.

Each document is checked in one worker thread, so requests are answered while a large spec is
checked. A change is checked at once, unless a check of that document is under way: then the
changes that arrive meanwhile wait for it to end, and only the newest text is checked (typing
never queues a check per key; the quiet period is the check's own time). A check's result
belongs to the document's text at the time: a newer change drops it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from cnnspec import __version__
from cnnspec.lsp import actions, completion, hints, hover, navigation
from cnnspec.lsp.checking import Checked, check_document, kept
from cnnspec.lsp.convert import Positions, path_to_uri, to_lsp, uri_to_path


class CnnspecServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("cnnspec", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnspec-check")
        #: uri -> the future of the check of its current text
        self.checks: dict[str, asyncio.Future] = {}
        #: uri -> the future of the check started last, current or not
        self.under_way: dict[str, asyncio.Future] = {}
        #: uri -> its latest check whose text parsed, while the files it imports are unchanged
        self.parsed: dict[str, Checked] = {}
        #: uri -> a number bumped on every change, so a stale debounce gives up
        self.generation: dict[str, int] = {}
        self.inlay_hints = True

    # ------------------------------------------------------------ documents and checks

    def texts(self) -> dict[str, str]:
        """Every open document's text by absolute path."""
        return {uri_to_path(doc.uri): doc.source for doc in list(self.workspace.text_documents.values())}

    def positions(self, lines: list[str]) -> Positions:
        return Positions(lines, self.workspace.position_codec.client_num_units)

    async def checked(self, uri: str) -> Checked | None:
        """The check of the document's current text, started now if none is under way."""
        if uri not in self.workspace.text_documents:
            return None
        future = self.checks.get(uri)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(
                self.checker, kept, check_document, uri_to_path(uri), self.texts())
            self.checks[uri] = self.under_way[uri] = future
        result = await asyncio.shield(future)
        if result.program is not None and self.checks.get(uri) is future:
            self.parsed[uri] = result
        return result

    async def indexed(self, uri: str) -> Checked | None:
        """`checked`, with the result's site index built (in the checking thread: for a large
        spec it takes a while)."""
        result = await self.checked(uri)
        if result is not None and "index" not in result.__dict__:
            await asyncio.get_running_loop().run_in_executor(self.checker, kept, lambda: result.index)
        return result

    def changed(self, uri: str) -> None:
        """Forget the checks that read this document, and re-check them after the quiet period."""
        path = uri_to_path(uri)
        stale = [uri]
        for other, future in list(self.checks.items()):
            # a check still under way may have read the old text: it is stale too
            if other != uri and (not future.done() or future.cancelled() or future.exception() is not None
                                 or path in future.result().files):
                stale.append(other)
        for each in stale:
            if each != uri:  # the blocks it saw through an import may have changed
                self.parsed.pop(each, None)
            self.checks.pop(each, None)
            self.generation[each] = self.generation.get(each, 0) + 1
            asyncio.ensure_future(self.publish_later(each, self.generation[each]))

    async def publish_later(self, uri: str, generation: int) -> None:
        """Publish the diagnostics of change `generation`, unless a newer change comes before its
        check starts."""
        running = self.under_way.get(uri)
        if running is not None and not running.done():
            await asyncio.wait([running])
        if self.generation.get(uri) != generation:
            return
        result = await self.checked(uri)
        if result is None or self.generation.get(uri) != generation:
            return
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, diagnostics=self.lsp_diagnostics(result)))

    def lsp_diagnostics(self, result: Checked) -> list[types.Diagnostic]:
        positions = self.positions(result.lines)
        files = dict(result.sources.files())

        def other_lines(name: str) -> list[str]:
            text = result.texts.get(name)
            return text.split("\n") if text is not None else files.get(name, [])

        anchor = navigation.first_import_span(result)
        return [to_lsp(d, result.path, positions, other_lines, anchor) for d in result.diagnostics]


#: requests answered from the check of the document's current text: method -> (answer, answer without one)
ANSWERS = {
    types.TEXT_DOCUMENT_HOVER: (lambda r, ls, p: hover.hover(r, ls.positions(r.lines), p.position), None),
    types.TEXT_DOCUMENT_INLAY_HINT: (
        lambda r, ls, p: hints.inlay_hints(r, ls.positions(r.lines), p.range) if ls.inlay_hints else [], []),
    types.TEXT_DOCUMENT_DEFINITION: (lambda r, ls, p: navigation.definition(r, ls.positions, p.position), None),
    types.TEXT_DOCUMENT_REFERENCES: (lambda r, ls, p: navigation.references(
        r, ls.positions, p.position, p.context.include_declaration), []),
    types.TEXT_DOCUMENT_DOCUMENT_SYMBOL: (lambda r, ls, p: navigation.symbols(r, ls.positions(r.lines)), []),
    types.TEXT_DOCUMENT_PREPARE_RENAME: (lambda r, ls, p: navigation.prepare_rename(r, ls.positions, p.position), None),
    types.TEXT_DOCUMENT_RENAME: (lambda r, ls, p: navigation.rename(r, ls.positions, p.position, p.new_name), None),
}


#: the requests whose answers read the site index
NEED_INDEX = {types.TEXT_DOCUMENT_HOVER, types.TEXT_DOCUMENT_INLAY_HINT}


def _answer_from_check(server: CnnspecServer, method: str, answer, empty) -> None:
    @server.feature(method)
    async def handler(ls: CnnspecServer, params):
        uri = params.text_document.uri
        result = await (ls.indexed(uri) if method in NEED_INDEX else ls.checked(uri))
        return answer(result, ls, params) if result is not None else empty


def build_server() -> CnnspecServer:
    server = CnnspecServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: CnnspecServer, params: types.InitializeParams):
        options = params.initialization_options
        if isinstance(options, dict) and "inlayHints" in options:
            ls.inlay_hints = bool(options["inlayHints"])

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CnnspecServer, params: types.DidOpenTextDocumentParams):
        ls.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CnnspecServer, params: types.DidChangeTextDocumentParams):
        ls.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CnnspecServer, params: types.DidSaveTextDocumentParams):
        # a configuration or an unopened import may have changed on disk meanwhile
        ls.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CnnspecServer, params: types.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        ls.checks.pop(uri, None)
        ls.under_way.pop(uri, None)
        ls.parsed.pop(uri, None)
        ls.generation[uri] = ls.generation.get(uri, 0) + 1
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    for method, (answer, empty) in ANSWERS.items():
        _answer_from_check(server, method, answer, empty)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["=", ".", '"', "/"]))
    async def on_completion(ls: CnnspecServer, params: types.CompletionParams):
        uri = params.text_document.uri
        doc = ls.workspace.get_text_document(uri)
        lines = doc.source.split("\n")
        line0 = params.position.line
        last = ls.parsed.get(uri)
        if last is not None and completion.same_but_line(last.lines, lines, line0):
            program = last.program  # typing within a line: the blocks are those of the last parse
        else:
            program = await asyncio.get_running_loop().run_in_executor(
                ls.checker, completion.program_without_line, uri_to_path(uri), lines, line0, ls.texts())
        return completion.complete(lines, ls.positions(lines), params.position, uri_to_path(uri), program)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(ls: CnnspecServer, params: types.DocumentFormattingParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        return actions.formatting(doc.source, uri_to_path(doc.uri), ls.positions(doc.source.split("\n")))

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def on_code_action(ls: CnnspecServer, params: types.CodeActionParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        lines = doc.source.split("\n")
        return actions.code_actions(params.text_document.uri, lines, ls.positions(lines), params.context.diagnostics)

    return server


__all__ = ["CnnspecServer", "build_server", "path_to_uri"]
