"""The language server's latency, as an editor sees it: `cnnspec lsp` in a subprocess, driven over
stdio by pygls's client, beside `cnnspec check` of the same text.

Run: python bench/bench_lsp.py [--runs N]   (writes its section of docs/benchmarks.md)

- didChange -> publishDiagnostics on `specs/resnet50.cnn` after a one-character edit;
- hover on a ResNet-50 layer once the check is done (the answer reads its rows), and right after
  an edit (the hover waits for the check);
- didChange -> publishDiagnostics after a one-character edit of a 10,000-layer spec, and the
  same followed by what an editor asks next (inlay hints for a screenful, the outline);
- beside each: `cnnspec check` of the same file as a whole process, and `cnnspec.network.check`
  in this process once warm (the check's own work, without the interpreter's start).

Medians of N runs, measured in one run of this script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_check import generated_spec
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from results import machine, write_section

from cnnspec.network import check

ROOT = Path(__file__).resolve().parent.parent


class Client:
    def __init__(self) -> None:
        self.lsp = LanguageClient("cnnspec-bench", "1")
        self.published: dict[str, asyncio.Event] = {}

        @self.lsp.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(ls, params: types.PublishDiagnosticsParams):
            self.published.setdefault(params.uri, asyncio.Event()).set()

        self.versions: dict[str, int] = {}

    async def start(self) -> None:
        await self.lsp.start_io(sys.executable, "-m", "cnnspec", "lsp")
        await self.lsp.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        self.lsp.initialized(types.InitializedParams())

    def expect(self, uri: str) -> asyncio.Event:
        event = self.published[uri] = asyncio.Event()
        return event

    async def open(self, path: Path, text: str) -> None:
        uri = path.as_uri()
        self.versions[uri] = 1
        event = self.expect(uri)
        self.lsp.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="cnn", version=1, text=text)))
        await event.wait()

    def change(self, path: Path, text: str) -> asyncio.Event:
        uri = path.as_uri()
        self.versions[uri] += 1
        event = self.expect(uri)
        self.lsp.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
        return event

    async def hover(self, path: Path, line: int, character: int):
        return await self.lsp.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=path.as_uri()),
            position=types.Position(line=line, character=character)))

    async def editor_round(self, path: Path, lines: int) -> None:
        """What an editor asks once a change is checked: inlay hints for a screenful and the outline."""
        ident = types.TextDocumentIdentifier(uri=path.as_uri())
        await self.lsp.text_document_inlay_hint_async(types.InlayHintParams(
            text_document=ident, range=types.Range(start=types.Position(line=0, character=0),
                                                   end=types.Position(line=lines, character=0))))
        await self.lsp.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=ident))

    async def stop(self) -> None:
        await self.lsp.shutdown_async(None)
        self.lsp.exit(None)
        await self.lsp.stop()


def edited(text: str, run: int) -> str:
    """The text with one character changed in its first comment, different on every run."""
    return text.replace("#", "#" + "ab"[run % 2], 1)


async def diagnostics_latency(client: Client, path: Path, text: str, runs: int) -> list[float]:
    times = []
    for run in range(runs):
        start = time.perf_counter()
        await client.change(path, edited(text, run)).wait()
        times.append(time.perf_counter() - start)
    return times


async def measure(runs: int, big: Path) -> dict[str, float]:
    client = Client()
    await client.start()
    resnet = ROOT / "specs" / "resnet50.cnn"
    text = resnet.read_text()
    await client.open(resnet, text)
    line = next(i for i, s in enumerate(text.split("\n")) if s.startswith("avgpool:"))
    figures = {"resnet50_diagnostics": statistics.median(await diagnostics_latency(client, resnet, text, runs))}
    hovers = []
    for _ in range(runs):
        start = time.perf_counter()
        answer = await client.hover(resnet, line, len("avgpool: av"))
        hovers.append(time.perf_counter() - start)
        assert "2048x1x1" in answer.contents.value
    figures["resnet50_hover"] = statistics.median(hovers)
    after_edit = []
    for run in range(runs):
        start = time.perf_counter()
        client.change(resnet, edited(text, run + 1))
        await client.hover(resnet, line, len("avgpool: av"))
        after_edit.append(time.perf_counter() - start)
    figures["resnet50_hover_after_edit"] = statistics.median(after_edit)
    big_text = big.read_text()
    await client.open(big, big_text)
    big_runs = max(3, runs // 4)
    figures["big_diagnostics"] = statistics.median(await diagnostics_latency(client, big, big_text, big_runs))
    rounds = []
    for run in range(big_runs):
        start = time.perf_counter()
        await client.change(big, edited(big_text, run + 1)).wait()
        await client.editor_round(big, 60)
        rounds.append(time.perf_counter() - start)
    figures["big_editor_round"] = statistics.median(rounds)
    await client.stop()
    return figures


def whole_process(path: Path, runs: int) -> float:
    """`cnnspec check PATH` as a process, median wall time."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cnnspec", "check", str(path)], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(path: Path, runs: int) -> float:
    """`cnnspec.network.check` of PATH in this process after a first, warming run, median."""
    check(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        check(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    resnet = ROOT / "specs" / "resnet50.cnn"
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "gen10000.cnn"
        big.write_text("# generated\n" + generated_spec(10_000))
        f = asyncio.run(measure(args.runs, big))
        big_runs = max(3, args.runs // 4)
        process = {"resnet50": whole_process(resnet, big_runs), "big": whole_process(big, big_runs)}
        warm = {"resnet50": in_process(resnet, args.runs), "big": in_process(big, big_runs)}

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:,.0f} ms"

    lines = [
        "## The language server",
        "",
        "Produced by `python bench/bench_lsp.py`: `cnnspec lsp` driven over stdio by pygls's client, "
        "beside `cnnspec check` of the same file; medians of each figure.",
        f"{machine()} Load average during the run: {load_before:.1f} at its start, {os.getloadavg()[0]:.1f} at its end "
        "(other work shares the cores; figures scale with it).",
        "",
        "| what | the server | `cnnspec check`, whole process | `check` in a warm process | target |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| ResNet-50: one-character edit to its diagnostics | {ms(f['resnet50_diagnostics'])} | "
        f"{ms(process['resnet50'])} | {ms(warm['resnet50'])} | 50 ms |",
        f"| ResNet-50: hover on a layer, checked already | {ms(f['resnet50_hover'])} | - | - | 20 ms |",
        f"| ResNet-50: hover right after an edit (waits for the check) | {ms(f['resnet50_hover_after_edit'])} "
        "| - | - | - |",
        f"| 10,000 layers: one-character edit to its diagnostics | {ms(f['big_diagnostics'])} | "
        f"{ms(process['big'])} | {ms(warm['big'])} | 1,500 ms |",
        f"| 10,000 layers: the same, then inlay hints for 60 lines and the outline | {ms(f['big_editor_round'])} "
        "| - | - | - |",
        "",
        "A change is checked at once unless a check of the document is under way; changes that",
        "arrive meanwhile wait for it and only the newest text is checked, so typing never queues",
        "a check per key. Against the check in a warm process, the server's latency is "
        f"{f['resnet50_diagnostics'] / warm['resnet50']:.2f}x on ResNet-50 and {f['big_diagnostics'] / warm['big']:.2f}x "
        "on 10,000 layers (1.00x would be the check's own time, nothing added by the server).",
    ]
    write_section("lsp", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
