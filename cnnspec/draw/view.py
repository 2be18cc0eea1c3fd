"""`cnnspec view`: one self-contained HTML file (inline CSS and JS, nothing fetched) showing the
diagram as nested boxes the browser lays out, so that every group opens and closes in place, and
a panel with the summary row of the layer, join or group under the pointer (or clicked).

The same nesting as the SVG diagram: a sequence is a column joined by lines labelled with the
shape, a merge a row of branches between two rails and a join, a group a titled frame; a closed
group is one box with its totals."""

from __future__ import annotations

import json
import re
from html import escape

from cnnspec.analysis.stats import describe_field
from cnnspec.draw.geometry import JOIN_SYMBOL, figures, layer_text, scope_title
from cnnspec.layers.base import describe_shape
from cnnspec.summary import _size


def row_record(row, name: str, kind: str, source: str) -> dict:
    """What the panel shows for one summary row."""
    return {"name": name or "-", "kind": kind, "output": describe_shape(row.out_shape), "params": f"{row.params:,}",
            "macs": f"{row.macs:,}", "rf": describe_field(row.rf), "activation": _size(row.extra.get("bytes", row.activation_bytes)),
            "line": source}


class _GroupRow:
    """A scope's totals, as `summary --depth` folds them."""

    def __init__(self, rows):
        self.params = sum(r.params for r in rows)
        self.macs = sum(r.macs for r in rows)
        self.out_shape, self.rf = rows[-1].out_shape, rows[-1].rf
        self.extra = {"bytes": sum(r.activation_bytes for r in rows)}
        self.activation_bytes = self.extra["bytes"]
        self.id = rows[0].id


class View:
    def __init__(self, network, depth: int):
        self.network = network
        self.depth = depth
        self.rows = {r.id: r for r in network.rows}
        self.records: dict[str, dict] = {}
        self.scope_rows: dict[str, list] = {}
        for row in network.rows:
            for scope in row.scopes:
                self.scope_rows.setdefault(scope, []).append(row)

    def _source(self, span) -> str:
        return f"{span.file}:{span.line}" if span is not None else "-"

    def _node(self, key: str, text: str, classes: str, record: dict | None) -> str:
        if record is not None:
            self.records[key] = record
        return (f'<div class="node {classes}" data-key="{escape(key)}" tabindex="0">'
                + "<br>".join(escape(t) for t in text.split("\n")) + "</div>")

    def edge(self, shape) -> str:
        return f'<div class="edge"><span>{escape(describe_shape(shape))}</span></div>'

    def sequence(self, items, outer) -> tuple[str, tuple | None]:
        parts, shape = [], None
        for item in items:
            html, out = self.item(item, outer)
            if html is None:
                continue
            if parts:
                parts.append(self.edge(shape))
            parts.append(html)
            shape = out
        return "".join(parts), shape

    def item(self, item, outer):
        if item.node == "layer":
            row = self.rows[item.id]
            record = row_record(row, item.path, item.kind, self._source(item.span))
            return self._node(f"r{item.id}", layer_text(item), f"layer kind-{item.kind}", record), item.out_shape
        if item.node == "merge":
            return self.merge(item, outer), item.out_shape
        if item.scope is None:
            html, shape = self.sequence(item.items, outer)
            return (html or None), shape
        return self.group(item, outer)

    def merge(self, node, outer) -> str:
        branches = []
        for branch in node.branches:
            html, shape = self.item(branch, outer) if branch.items else (None, None)
            if html is None:
                branches.append('<div class="branch identity"><div class="fill"></div></div>')
                continue
            label = describe_shape(shape) if tuple(shape) != tuple(node.out_shape) else ""
            branches.append(f'<div class="branch"><div class="stub"></div>{html}'
                            f'<div class="fill"><span>{escape(label)}</span></div></div>')
        row = self.rows[node.id]
        join = self._node(f"r{node.id}", JOIN_SYMBOL[node.op], f"join op-{node.op}",
                          row_record(row, node.path, row.kind, self._source(node.span)))
        return f'<div class="merge"><div class="branches">{"".join(branches)}</div><div class="stub"></div>{join}</div>'

    def group(self, seq, outer):
        rows = self.scope_rows.get(seq.scope)
        if not rows:
            return None, None
        inner, shape = self.sequence(seq.items, outer + (seq.scope,))
        title = scope_title(seq, outer[-1] if outer else None, self.network.sources)
        totals = _GroupRow(rows)
        key = f"s{seq.scope}"
        record = row_record(totals, seq.scope, seq.block or "group", self._source(seq.span))
        box = self._node(key, f"{title}\n{figures(totals)}", "group-box", record)
        state = "open" if len(outer) + 1 < self.depth else "closed"
        return (f'<div class="group {state}" data-scope="{escape(seq.scope)}">'
                f'<div class="title"><button class="toggle" aria-label="open or close">'
                f'</button> <span class="name">{escape(title)}</span></div><div class="body"><div class="stub"></div>{inner}</div>{box}</div>'), shape

    def page(self) -> str:
        net = self.network
        body, shape = self.sequence(net.graph.body.items, ())
        source = f'<div class="node io">{escape(net.graph.input_name)}: {escape(describe_shape(net.input_shape))}</div>'
        sink = f'<div class="node io">output {escape(describe_shape(net.output_shape))}</div>'
        diagram = source + self.edge(net.input_shape) + body + self.edge(net.output_shape) + sink
        totals = (f"{net.params:,} params · {net.macs:,} MACs · input {describe_shape(net.input_shape)} → "
                  f"output {describe_shape(net.output_shape)}")
        data = json.dumps(self.records, separators=(",", ":")).replace("</", "<\\/")
        parts = {"css": CSS, "js": JS, "name": escape(net.name), "totals": escape(totals), "diagram": diagram,
                 "data": data}
        return re.sub(r"\{(css|js|name|totals|diagram|data)\}", lambda m: parts[m.group(1)], PAGE)


def to_html(network, depth: int = 2) -> str:
    """The HTML view; groups nested `depth` deep or more start closed."""
    if depth < 1:
        raise ValueError(f"depth must be 1 or more, not {depth}")
    return View(network, depth).page()


CSS = """
body { margin: 0; font: 12px 'DejaVu Sans Mono', Menlo, Consolas, monospace; color: #1a1a1a; background: #fff; }
header { padding: 8px 12px; border-bottom: 1px solid #ddd; position: sticky; top: 0; background: #fff; z-index: 2; }
header button { font: inherit; margin-left: 8px; }
main { display: flex; align-items: flex-start; }
#diagram { flex: 1; overflow: auto; padding: 16px; display: flex; flex-direction: column; align-items: center; }
#panel { position: sticky; top: 44px; width: 280px; margin: 12px; padding: 10px; border: 1px solid #ccc;
  border-radius: 6px; background: #fcfcfc; }
#panel table { border-collapse: collapse; width: 100%; }
#panel th { text-align: left; color: #666; font-weight: normal; padding: 2px 8px 2px 0; }
#panel td { text-align: right; }
.seq, .body, .merge, .branch, #diagram { display: flex; flex-direction: column; align-items: center; }
.node { border: 1px solid #4a6fa5; background: #eef3fb; border-radius: 3px; padding: 4px 8px; white-space: nowrap;
  cursor: pointer; }
.node:hover, .node.selected { outline: 2px solid #f0a202; }
.node.io { border-color: #2e7d32; background: #e8f5e9; cursor: default; }
.node.group-box { border-color: #b7791f; background: #fdf3e1; }
.node.join { border-radius: 50%; width: 20px; height: 20px; padding: 0; text-align: center; line-height: 20px;
  background: #fff; border-color: #444; font-weight: bold; }
.edge, .stub { width: 1px; background: #555; position: relative; }
.edge { height: 24px; }
.stub { height: 12px; }
.edge span, .fill span { position: absolute; left: 6px; top: 5px; font-size: 10px; color: #666; white-space: nowrap; }
.branches { display: flex; align-items: stretch; }
.branch { position: relative; padding: 0 9px; }
.branch::before, .branch::after { content: ""; position: absolute; left: 0; right: 0; border-top: 1px solid #555; }
.branch::before { top: 0; }
.branch::after { bottom: 0; }
.branch:first-child::before, .branch:first-child::after { left: 50%; }
.branch:last-child::before, .branch:last-child::after { right: 50%; }
.branch:only-child::before, .branch:only-child::after { display: none; }
.fill { flex: 1; width: 1px; min-height: 12px; background: #555; position: relative; }
.branch.identity .fill { min-height: 24px; }
.group { border: 1px dashed #9e9e9e; border-radius: 6px; padding: 4px 10px 10px; background: rgba(0,0,0,0.015);
  display: flex; flex-direction: column; align-items: center; }
.group > .title { align-self: stretch; color: #555; white-space: nowrap; }
.toggle { font: inherit; width: 20px; padding: 0; margin-right: 4px; cursor: pointer; }
.group.open > .title .toggle::before { content: "−"; }
.group.closed > .title .toggle::before { content: "+"; }
.group.open > .group-box, .group.closed > .body, .group.closed > .title .name { display: none; }
"""

JS = """
const rows = JSON.parse(document.getElementById('rows').textContent);
const panel = document.getElementById('panel');
const fields = [['name', 'name'], ['kind', 'kind'], ['output', 'output'], ['params', 'params'], ['macs', 'MACs'],
  ['rf', 'receptive field'], ['activation', 'activation (fp32)'], ['line', 'source']];
let selected = null;
function show(node) {
  const row = rows[node.dataset.key];
  if (!row) return;
  panel.innerHTML = '<table>' + fields.map(([key, title]) =>
    `<tr><th>${title}</th><td data-field="${key}"></td></tr>`).join('') + '</table>';
  for (const [key] of fields) panel.querySelector(`[data-field="${key}"]`).textContent = row[key];
}
document.querySelectorAll('.node[data-key]').forEach(node => {
  node.addEventListener('mouseenter', () => show(node));
  node.addEventListener('mouseleave', () => { if (selected) show(selected); });
  node.addEventListener('click', event => {
    if (selected) selected.classList.remove('selected');
    selected = node; node.classList.add('selected'); show(node); event.stopPropagation();
  });
});
function setGroup(group, open) { group.classList.toggle('open', open); group.classList.toggle('closed', !open); }
document.querySelectorAll('.toggle').forEach(button => button.addEventListener('click', event => {
  const group = button.closest('.group');
  setGroup(group, group.classList.contains('closed')); event.stopPropagation();
}));
document.getElementById('open-all').addEventListener('click', () =>
  document.querySelectorAll('.group').forEach(g => setGroup(g, true)));
document.getElementById('close-all').addEventListener('click', () =>
  document.querySelectorAll('.group').forEach(g => setGroup(g, false)));
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name}</title><style>{css}</style></head>
<body><header><b>{name}</b>: {totals}<button id="open-all">open all</button><button id="close-all">close all</button>
</header><main><div id="diagram">{diagram}</div><aside id="panel">Point at a layer, a join or a group to see its row
of the summary; click to keep it.</aside></main>
<script id="rows" type="application/json">{data}</script><script>{js}</script></body></html>
"""
