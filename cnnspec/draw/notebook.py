"""A `Network` in Jupyter: the summary as an HTML table, then the diagram as inline SVG."""

from __future__ import annotations

import json
from html import escape

from cnnspec.draw.geometry import layout
from cnnspec.draw.svg import to_svg

#: the depth of the table and the diagram a notebook shows (`draw --depth` / `summary --depth`)
DEPTH = 2

HEAD = ("name", "kind", "output", "params", "MACs", "RF", "act (fp32)")


def network_html(network, depth: int = DEPTH) -> str:
    document = json.loads(network.summary(format="json", depth=depth))
    cells = []
    for row in document["layers"]:
        values = (row["name"] or "-", row["kind"], "x".join(map(str, row["output"])), f"{row['params']:,}",
                  f"{row['macs']:,}", row["receptive_field"], f"{row['activation_bytes']:,} B")
        cells.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in values) + "</tr>")
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in HEAD) + "</tr>"
    caption = (f"<b>{escape(network.name)}</b>: {network.params:,} params, {network.macs:,} MACs, input "
               f"{'x'.join(map(str, network.input_shape))}, output {'x'.join(map(str, network.output_shape))}")
    svg = to_svg(layout(network, depth), standalone=False)
    return (f'<div class="cnnspec-network"><p>{caption}</p>'
            f'<details open><summary>summary at depth {depth} ({len(document["layers"])} rows)</summary>'
            f'<table class="cnnspec-summary">{head}{"".join(cells)}</table></details>'
            f'<div style="max-height:640px;overflow:auto">{svg}</div></div>')
