"""`load` / `loads`: a spec's text to a checked `Network` with its figures, or `SpecError`."""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnnspec import ir
from cnnspec.analysis.elaborate import Elaboration, Elaborator
from cnnspec.analysis.expressions import MAX_MAGNITUDE
from cnnspec.analysis.limits import Limits
from cnnspec.arguments import check_arguments, path_argument, text_argument, texts_argument
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, Label, SourceMap, SpecError, sort_diagnostics
from cnnspec.frontend.loader import Program, load_program, program_from_text
from cnnspec.graph import CheckedGraph

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cnnspec.config import Config


class Network(CheckedGraph):
    """A checked spec: its resolved graph, per-layer rows and totals (see `CheckedGraph`), its
    diagnostics, and the backends as methods."""

    def __init__(self, program: Program, result: Elaboration, path: str):
        totals = result.totals
        super().__init__(result.graph, result.rows, program.sources, path, result.scope_blocks,
                         params=totals.params, buffers=totals.buffers, macs=totals.macs,
                         activation_bytes=totals.memory)
        self.diagnostics: list[Diagnostic] = sort_diagnostics(result.diagnostics)
        #: `expect` contracts that do not apply at an overridden input (shape, MACs, memory), not checked
        self.skipped_expects = result.skipped

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def summary(self, format: str = "table", depth: int | None = None, sizes: bool = False) -> str:
        """The per-layer table and totals (`cnnspec.summary.render_summary`); with `sizes`, the input
        sizes the network is valid for too."""
        from cnnspec.summary import render_summary

        return render_summary(self, format=format, depth=depth, sizes=sizes)

    def to_torch(self, seed: int | None = None, outputs=None, memory_budget: int | None = 4 * 2**30):
        """An `nn.Module` for this network (imports torch); see `cnnspec.backends.torch.to_torch`."""
        from cnnspec.backends.extras import require

        require("to_torch()")
        from cnnspec.backends.torch import to_torch

        return to_torch(self, seed=seed, outputs=outputs, memory_budget=memory_budget)

    def to_onnx(self, weights=None, opset: int | None = None, fold_bn: bool = True, batch: int | None = None,
                seed: int = 0, memory_budget: int | None = 4 * 2**30, dynamic: str = "batch",
                precision: str = "float32", keep_io_types: bool = False, calibration=None, preprocessing=None,
                labels=None):
        """An `onnx.ModelProto` built with `onnx.helper` (imports onnx and numpy), with the metadata
        `cnnspec export` writes; see `cnnspec.backends.onnx.to_onnx`. `precision`: `float32`,
        `float16` (with `keep_io_types`, float32 inputs and outputs) or `int8` (static, QDQ,
        per-channel weights, through onnxruntime's quantiser), which needs `calibration`: a path as
        `export --calibrate` takes, or an array of samples (n, *input shape). `preprocessing`: a
        `cnnspec.backends.metadata.Preprocessing`, stored in the metadata and applied to calibration
        images. `labels`: the output classes' names, a sequence of strings or the path of a text
        file of them one per line, as `export --labels` takes, stored in the metadata (`cnnspec run
        --image` names the top-5 with them). The same path as `cnnspec export`
        (`cnnspec.backends.deploy`); contradictory or unfitting options raise
        `cnnspec.backends.metadata.OptionError` (a `ValueError`) before anything is built."""
        from cnnspec.backends.extras import require

        require("to_onnx(precision='int8')" if precision == "int8" else "to_onnx()")
        from cnnspec.backends.deploy import Deployment, finish
        from cnnspec.backends.onnx import DEFAULT_OPSET, to_onnx

        # checked before the float32 graph is built
        deployment = Deployment(precision=precision, keep_io_types=keep_io_types, calibration=calibration,
                                preprocessing=preprocessing, labels=labels)
        deployment.check(self)
        model = to_onnx(self, weights=weights, opset=opset or DEFAULT_OPSET, fold_bn=fold_bn, batch=batch, seed=seed,
                        memory_budget=memory_budget, dynamic=dynamic)
        return finish(model, self, deployment)

    def input_sizes(self):
        """The sizes of each spatial axis of the input the network is valid for, with the same
        weights (imports nothing heavy); see `cnnspec.analysis.sizes`. A network of several inputs
        raises `cnnspec.analysis.sizes.Unsupported`."""
        from cnnspec.analysis.sizes import input_sizes

        return input_sizes(self)

    def to_torch_source(self) -> str:
        """Readable PyTorch source for this network (imports nothing heavy to generate)."""
        from cnnspec.backends.torch_source import emit_torch_source

        return emit_torch_source(self)

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary table and the diagram (`summary()` stays plain text)."""
        from cnnspec.draw.notebook import network_html

        return network_html(self)

    def __repr__(self) -> str:
        return f"<Network {self.name}: {self.params:,} params, {self.macs:,} MACs, {self.describe_outputs()}>"


@contextmanager
def collector_paused():
    """Checking allocates many small, short-lived objects and few cycles; the cyclic garbage
    collector's passes over them took a third of a 10,000-layer check. It is paused while a spec
    is checked, and collects any cycles afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(path: str | os.PathLike, input: tuple[int, ...] | None = None, limits: Limits | None = None,
         config: "Config | None" = None, texts: "Mapping[str | os.PathLike, str] | None" = None) -> Network:
    """Load and check a spec file (or `zoo:NAME`); raises `SpecError` on any error.

    `config` (`cnnspec.config.config_for(path)` finds a project's) switches lints off, turns
    warnings into errors and sets the limits; an explicit `limits` wins over its limits. Under a
    `strict` configuration any warning fails the load too. `texts` maps files (the spec's own or
    its imports', by path) to text read in their place.
    """
    path, input = path_argument("load", "path", path), check_arguments("load", input, limits, config)
    texts = texts_argument("load", texts)
    limits = resolve_limits(limits, config)
    with collector_paused():
        program = load_program(path, limits.max_tokens, limits.max_layers, texts=texts)
        return _strictly(_check(program, str(path), input, limits, config), config)


def loads(text: str, path: str = "<string>", input: tuple[int, ...] | None = None,
          limits: Limits | None = None, root: str | os.PathLike | None = None,
          config: "Config | None" = None, origin: str | os.PathLike | None = None,
          texts: "Mapping[str | os.PathLike, str] | None" = None) -> Network:
    """Check spec text. Imports resolve inside `root` (default: the current folder), relative to
    `origin`, the file the text was read from (default: `path` inside `root`); an import named
    in `texts` (by path) is read from there."""
    text, path = text_argument("loads", "text", text), path_argument("loads", "path", path)
    texts = texts_argument("loads", texts)
    root = path_argument("loads", "root", root, optional=True)
    origin = path_argument("loads", "origin", origin, optional=True)
    input = check_arguments("loads", input, limits, config)
    root_path = Path(root) if root is not None else Path.cwd()
    limits = resolve_limits(limits, config)
    with collector_paused():
        program = program_from_text(text, path, root=root_path.resolve(),
                                    origin=Path(origin).resolve() if origin is not None else None,
                                    max_tokens=limits.max_tokens, max_layers=limits.max_layers, texts=texts)
        return _strictly(_check(program, path, input, limits, config), config)


def _strictly(network: Network, config: "Config | None") -> Network:
    """The network, unless a strict configuration fails it on its warnings."""
    if config is not None and config.strict and network.diagnostics:
        raise SpecError(network.diagnostics, network.sources)
    return network


class Library:
    """A file of blocks only (no `input` and no layers), as `specs/common/resnet.cnn`: it parses,
    its imports resolve and its block names are unique. Its blocks are checked where they are
    called, with arguments."""

    def __init__(self, program: Program, path: str):
        self.path = path
        self.blocks = [s.name for s in program.spec.statements if s.node == "block"]
        self.diagnostics = sort_diagnostics(program.diagnostics)
        self.sources = program.sources


def is_library(spec: ir.SpecFile) -> bool:
    return all(s.node in ("block", "import") for s in spec.statements) and any(
        s.node == "block" for s in spec.statements)


@dataclass(frozen=True)
class CheckResult:
    """What `check` found in one file: the `Network` (or `Library`) when it is valid, every
    diagnostic, the sources they quote, and whether the file passes. It unpacks as
    `network, diagnostics, sources = check(path)`."""

    network: "Network | Library | None"
    diagnostics: list[Diagnostic]
    sources: SourceMap
    #: warnings fail the file too (`cnnspec check --strict`, `strict = true` in the configuration)
    strict: bool = False

    @property
    def ok(self) -> bool:
        """The file passes: it checks without errors and, when strict, without warnings."""
        if self.network is None or any(d.severity == "error" for d in self.diagnostics):
            return False
        return not (self.strict and self.diagnostics)

    def __iter__(self):
        return iter((self.network, self.diagnostics, self.sources))


def check(path: str | os.PathLike, input: tuple[int, ...] | None = None, limits: Limits | None = None,
          config: "Config | None" = None, libraries: bool = False, strict: bool = False,
          texts: "Mapping[str | os.PathLike, str] | None" = None) -> CheckResult:
    """Every diagnostic for a spec (errors and warnings) and the `Network` when it is valid; with
    `libraries`, a `Library` for a file of blocks only (otherwise such a file lacks an `input`).
    The result is `ok` when the spec checks; with `strict` (or a strict `config`), only when it
    raises no warning either. The network is given even then, as its figures hold. `texts` maps
    files (by path) to text read in their place."""
    path, input = path_argument("check", "path", path), check_arguments("check", input, limits, config)
    texts = texts_argument("check", texts)
    strict = bool(strict) or (config is not None and config.strict)
    limits = resolve_limits(limits, config)
    with collector_paused():  # one pause over both steps: a collection between them walks the parse
        try:
            program = load_program(path, limits.max_tokens, limits.max_layers, texts=texts)
        except SpecError as error:
            return CheckResult(None, error.diagnostics, error.sources, strict)
        return check_program(program, str(path), input, limits, config, libraries, strict)


def check_program(program: Program, path: str, input: tuple[int, ...] | None = None, limits: Limits | None = None,
                  config: "Config | None" = None, libraries: bool = False, strict: bool = False) -> CheckResult:
    """`check` of a program already loaded (`load_program` with the same limits): for a caller
    that also reads the parsed spec, as the language server does."""
    strict = bool(strict) or (config is not None and config.strict)
    try:
        with collector_paused():
            if libraries and input is None and is_library(program.spec):
                library = Library(program, path)
                if any(d.severity == "error" for d in library.diagnostics):
                    raise SpecError(library.diagnostics, program.sources)
                return CheckResult(library, library.diagnostics, library.sources, strict)
            network = _check(program, path, input, limits, config)
    except SpecError as error:
        return CheckResult(None, error.diagnostics, error.sources, strict)
    return CheckResult(network, network.diagnostics, network.sources, strict)


def resolve_limits(limits: Limits | None, config: "Config | None") -> Limits:
    """The limits that apply: explicit ones, else the configuration's, else the defaults."""
    if limits is not None:
        return limits
    return config.limits if config is not None else Limits()


def declared_inputs(spec: ir.SpecFile, diagnostics: list) -> list[ir.InputDecl]:
    """The spec's inputs in declaration order, one per name (a second of one name is E142)."""
    inputs: dict[str, ir.InputDecl] = {}
    for decl in (s for s in spec.statements if s.node == "input"):
        first = inputs.setdefault(decl.name, decl)
        if first is not decl:
            diagnostics.append(Diagnostic(code=Code.DUPLICATE_INPUT, message=f"input `{decl.name}` is declared twice",
                                          span=decl.span, label="second declaration",
                                          labels=(Label(span=first.span, message="first declared here"),),
                                          help="give each input its own name, such as "
                                               f"`input {decl.name}2: {'x'.join(map(str, decl.dims))}`"))
    return list(inputs.values())


def overridden_inputs(decls: list[ir.InputDecl], input, diagnostics: list) -> list[ir.InputDecl]:
    """The inputs with the sizes `input=` / `--input` give: a tuple is the first input's, a mapping
    gives inputs by name (`None` for the first); a name the spec does not declare is E143."""
    if input is None:
        return decls
    sizes = input if isinstance(input, dict) else {None: input}
    by_name = {decl.name: index for index, decl in enumerate(decls)}
    decls = list(decls)
    for name, dims in sizes.items():
        index = 0 if name is None else by_name.get(name)
        if index is None:
            from cnnspec.wording import closest

            near = closest(name, list(by_name))
            declared = ", ".join(f"`{n}`" for n in by_name)
            diagnostics.append(Diagnostic(code=Code.UNKNOWN_INPUT, message=f"an input size is given for `{name}`, "
                                                 "which the spec does not declare", span=decls[0].span,
                                          label=f"the spec's inputs: {declared}",
                                          help=f"did you mean `{near}`?" if near else
                                          "name a declared input (`--input NAME=3x64x64`), or give a bare size for "
                                          "the first"))
            continue
        decls[index] = decls[index].model_copy(update={"dims": tuple(dims)})
    return decls


def _check(program: Program, path: str, input: tuple[int, ...] | None, limits: Limits | None,
           config: "Config | None") -> Network:
    limits = resolve_limits(limits, config)
    diagnostics = list(program.diagnostics)
    spec = program.spec
    network_decls = [s for s in spec.statements if s.node == "network"]
    for extra in network_decls[1:]:
        diagnostics.append(Diagnostic(code=Code.REPEATED_DECLARATION, message="`network` is declared twice",
                                      span=extra.span, label="second declaration",
                                      labels=(Label(span=network_decls[0].span, message="first declared here"),)))
    input_decls = declared_inputs(spec, diagnostics)
    if not input_decls:
        start = ir.Span(file=path, line=1, column=1, end_line=1, end_column=2)
        diagnostics.append(Diagnostic(code=Code.MISSING_INPUT, message="the spec declares no `input`",
                                      span=start, label="expected an input declaration",
                                      help="declare the input shape per sample, such as `input x: 3x224x224`"))
        raise SpecError(diagnostics, program.sources)
    decls = overridden_inputs(input_decls, input, diagnostics)
    invalid = [decl for decl in decls if len(decl.dims) > 4 or any(not 1 <= d <= MAX_MAGNITUDE for d in decl.dims)]
    for decl in invalid:
        # an `input=` or `--input` size may be any integer: one beyond the bound is not spelt out
        shown = "x".join(str(d) if abs(d) <= MAX_MAGNITUDE else "(beyond 10^15)" for d in decl.dims)
        diagnostics.append(Diagnostic(code=Code.INVALID_VALUE, message=f"the input {shown} must be CxL, CxHxW or "
                                              "CxDxHxW with sizes from 1 to 10^15", span=decl.dims_span))
    if invalid:
        raise SpecError(diagnostics, program.sources)
    decl = decls[0]
    name = network_decls[0].name if network_decls else Path(path).stem
    statements = [s for s in spec.statements if s.node not in ("network", "input", "block", "import")]
    try:
        overridden = any(tuple(new.dims) != tuple(old.dims) for new, old in zip(decls, input_decls))
        blocks_complete = not any(d.severity == "error" for d in program.diagnostics)
        result = Elaborator(program.blocks, limits, overridden_input=overridden,
                            blocks_complete=blocks_complete).run(spec, name, decls, statements)
    except RecursionError:
        diagnostics.append(Diagnostic(code=Code.SPEC_TOO_LARGE, message="the spec is nested too deeply to check",
                                      span=decl.span))
        raise SpecError(diagnostics, program.sources) from None
    result.diagnostics = diagnostics + result.diagnostics
    if any(d.severity == "error" for d in result.diagnostics) or result.graph is None:
        raise SpecError(result.diagnostics, program.sources)
    from cnnspec.analysis.lints import run_lints
    from cnnspec.analysis.suppress import apply_suppressions

    for code, finding in run_lints(result.graph, result.rows, spec, program.blocks):
        result.diagnostics.append(Diagnostic(code=code, message=finding.message,
                                             span=finding.where, help=finding.help))
    result.diagnostics = apply_suppressions(result.diagnostics, program.sources)
    if config is not None:
        result.diagnostics = config.apply(result.diagnostics)
        if any(d.severity == "error" for d in result.diagnostics):
            raise SpecError(result.diagnostics, program.sources)
    return Network(program, result, path)
