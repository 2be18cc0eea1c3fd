"""Where in a file each figure of the summary comes from.

A site is a span of the source that produced rows of the summary: a layer, a merge
(`residual`, `concat`, ...), a block call or a labelled group. A site inside a block has one
instance per call. The figures are the summary's rows (`Network.rows`); a call's or a group's
are its rows folded as `cnnspec summary --depth` folds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnspec.analysis.stats import describe_field
from cnnspec.ir import Span
from cnnspec.layers.base import describe_shape
from cnnspec.summary import collapse


@dataclass(frozen=True)
class Figures:
    path: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    macs: int
    rf: str
    activation_bytes: int
    #: the id of the last row, for ordering sites by when they run
    last: int

    @property
    def shape(self) -> str:
        return describe_shape(self.out_shape)


@dataclass
class Site:
    span: Span
    what: str  # "layer", "merge", "call" or "group"
    instances: list[Figures] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return (self.span.end_line - self.span.line, self.span.end_column - self.span.column)

    def contains(self, line: int, column: int) -> bool:
        """Whether (line, column), 1-based, falls inside the span (its end included, for a caret there)."""
        s = self.span
        return (s.line, s.column) <= (line, column) <= (s.end_line, s.end_column)


def _figures(row, last: int | None = None) -> Figures:
    return Figures(row.path, row.kind, tuple(row.out_shape), row.params, row.macs, describe_field(row.rf),
                   row.extra.get("bytes", row.activation_bytes), row.id if last is None else last)


class SiteIndex:
    """The sites of one file of a checked network."""

    def __init__(self, sites: list[Site]):
        self.sites = sites

    @classmethod
    def build(cls, network, file: str) -> "SiteIndex":
        rows = getattr(network, "rows", None)
        if not rows:
            return cls([])
        by_id = {row.id: row for row in rows}
        scopes = _scope_figures(network)
        sites: dict[tuple, Site] = {}

        def add(span: Span | None, what: str, figures: Figures | None) -> None:
            if span is None or figures is None or span.file != file:
                return
            key = (span.line, span.column, span.end_line, span.end_column, what)
            sites.setdefault(key, Site(span, what)).instances.append(figures)

        stack = [network.graph.body]
        while stack:
            node = stack.pop()
            if node.node == "seq":
                if node.scope is not None:
                    add(node.span, "call" if node.block else "group", scopes.get(node.scope))
                stack.extend(node.items)
            else:
                row = by_id.get(node.id)
                add(node.span, node.node, _figures(row) if row is not None else None)
                if node.node == "merge":
                    stack.extend(node.branches)
        for site in sites.values():
            site.instances.sort(key=lambda f: f.last)  # in the order they run
        return cls(sorted(sites.values(), key=lambda s: (s.span.line, s.span.column)))

    def at(self, line: int, column: int) -> Site | None:
        """The innermost site under (line, column)."""
        under = [s for s in self.sites if s.contains(line, column)]
        return min(under, key=lambda s: s.size) if under else None

    def after(self, line: int, column: int) -> Site | None:
        """The outermost site starting on `line` after `column` (what a label names)."""
        later = [s for s in self.sites if s.span.line == line and s.span.column > column]
        if not later:
            return None
        first = min(s.span.column for s in later)
        return max((s for s in later if s.span.column == first), key=lambda s: s.size)

    def lines(self) -> dict[int, Site]:
        """Each line that ends a site -> the site whose output the line gives: the one ending last
        on it, the outermost of a tie."""
        best: dict[int, Site] = {}
        for site in self.sites:
            line = site.span.end_line
            current = best.get(line)
            if current is None or _ending_key(site) > _ending_key(current):
                best[line] = site
        return best


def _ending_key(site: Site) -> tuple:
    return (site.span.end_column, -site.span.line, -site.span.column)


def _scope_figures(network) -> dict[str, Figures]:
    """Every scope's folded figures, as `cnnspec summary --depth N` shows the scopes at depth N."""
    depth_max = max((len(row.scopes) for row in network.rows), default=0)
    found: dict[str, Figures] = {}
    rows = network.rows
    for depth in range(1, depth_max + 1):
        last_ids: dict[str, int] = {}
        for row in rows:
            if len(row.scopes) >= depth:
                last_ids[row.scopes[depth - 1]] = row.id
        for row in collapse(list(rows), depth, network.scope_blocks):
            scope = row.extra.get("collapsed")
            if scope is not None and scope not in found:
                found[scope] = _figures(row, last_ids.get(scope, row.id))
    return found
