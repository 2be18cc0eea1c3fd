"""What elaboration carries from item to item, and how it reports.

`Flow` is what leaves an item (its shape and receptive field), `Env` the names, input shape,
totals and scopes an item is elaborated in, `Scope` numbers and names the items of a group or a
block call as `nn.Sequential` does, `Frame` holds the totals of the network or of one call (for
`expect` bounds), and `Site` is a block call or a repeat's copy that a diagnostic raised inside
it points back to. `Reporting` is the part of the elaborator that collects diagnostics.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from cnnspec import ir
from cnnspec.analysis.expressions import EvalError, Evaluator, Unknown
from cnnspec.analysis.stats import ReceptiveField
from cnnspec.analysis.values import Values
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, Label


@dataclass
class Flow:
    shape: tuple[int, ...] | None
    rf: ReceptiveField


@dataclass
class Frame:
    """The network or one block call: its totals, for `expect` bounds inside it."""

    what: str
    params: int = 0
    buffers: int = 0
    macs: int = 0
    layers: int = 0
    memory: int = 0
    expects: list = field(default_factory=list)

    def metric(self, name: str) -> int | None:
        return {"params": self.params, "macs": self.macs, "flops": 2 * self.macs, "buffers": self.buffers,
                "layers": self.layers, "memory": self.memory, "activations": self.memory}.get(name)


class Scope:
    """A naming scope: a labelled group or a block call, numbering its items like nn.Sequential.

    `labels` holds every key taken directly in the scope, with where: its labels, and the
    positions its unlabelled items took (`positions`), since a numeric label (`3:`) may meet one."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.counter = 0
        self.labels: dict[str, ir.Span] = {}
        self.positions: set[str] = set()

    def join(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name


@dataclass
class Env:
    names: dict
    in_shape: tuple[int, ...] | None
    frames: tuple[Frame, ...]
    calls: tuple[tuple[str, ir.Span], ...] = ()
    scopes: tuple[str, ...] = ()
    #: the named values of the module being elaborated
    values: Values = field(default_factory=Values)


@dataclass(frozen=True)
class Site:
    """Where elaboration stands, for diagnostics: a block call (`copy` None) or one copy of a repeat,
    whose repeated item is `item`."""

    span: ir.Span
    copy: tuple[int, int] | None = None
    item: ir.Span | None = None


def call_chain(sites: list[Site]) -> tuple[Label, ...]:
    """One label per call a diagnostic was raised inside, outermost first; a call that is itself the
    repeated item says which copy it is (`in copy 3 of 4 of this call`)."""
    labels: list[Label] = []
    pending: Site | None = None
    for site in sites:
        if site.copy is not None:
            if pending is not None:
                labels.append(Label(span=pending.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]}"))
            pending = site
            continue
        if pending is not None and pending.item == site.span:
            labels.append(Label(span=site.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]} of this call"))
        else:
            if pending is not None:
                labels.append(Label(span=pending.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]}"))
            labels.append(Label(span=site.span, message="in this call"))
        pending = None
    if pending is not None:
        labels.append(Label(span=pending.span, message=f"in copy {pending.copy[0]} of {pending.copy[1]}"))
    return tuple(labels)


def keyword_span(span: ir.Span, keyword: str) -> ir.Span:
    """The span of the keyword that opens a construct (`residual`, `concat`, ...)."""
    return ir.Span(file=span.file, line=span.line, column=span.column, end_line=span.line,
                   end_column=span.column + len(keyword))


class Reporting:
    """Collects diagnostics; raised inside block calls and repeats, each points at the sites that led there."""

    diagnostics: list[Diagnostic]
    #: the block calls and repeat copies being elaborated, outermost first
    sites: list[Site]

    def error(self, code: Code, message: str, span: ir.Span | None, *, label: str = "", help: str | None = None,
              labels: tuple[Label, ...] = (), notes: tuple[str, ...] = ()) -> None:
        """Report a diagnostic (an error or a warning, as its code says); raised inside block calls,
        it points at every call that led there (a block's body is written once and may fail in only
        one of its calls)."""
        if self.sites:
            labels = labels + tuple(c for c in call_chain(self.sites) if c.span != span and c not in labels)
        self.diagnostics.append(Diagnostic(code=code, message=message, span=span, label=label,
                                           help=help, labels=labels, notes=notes))

    @contextmanager
    def inside(self, site: Site):
        """Elaborate within a call or a repeat's copy, which diagnostics raised there point back to."""
        self.sites.append(site)
        try:
            yield
        finally:
            self.sites.pop()

    def eval_error(self, error: EvalError) -> None:
        self.error(error.code, error.message, error.span, label=error.label, help=error.help)

    def evaluate(self, expr, env: Env):
        """Evaluate, reporting failures; `None` when the value cannot be had."""
        try:
            return Evaluator(env.names, env.in_shape)(expr)
        except EvalError as error:
            self.eval_error(error)
        except Unknown:
            pass
        except RecursionError:
            self.error(Code.SPEC_TOO_LARGE, "expression nested too deeply", expr.span)
        return None
