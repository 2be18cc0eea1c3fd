"""The per-layer table and totals, as text, Markdown, JSON or CSV. No torch needed."""

from __future__ import annotations

import csv
import io
import json

from cnnspec.analysis.needs import output_needs
from cnnspec.analysis.stats import Row, describe_field
from cnnspec.layers import REGISTRY
from cnnspec.layers.base import describe_shape
from cnnspec.wording import human

COLUMNS = ("name", "kind", "output", "params", "macs", "rf", "activation")

#: what the RF column's `whole` means, said under a table that shows it
#: how receptive fields are measured in a network of several inputs (see `analysis.stats`)
SEVERAL_INPUTS_LEGEND = ("receptive fields are measured on the inputs as one grid: a position's field spans the "
                         "positions it reads in any of them")
WHOLE_LEGEND = ("one output position's receptive field in input pixels, padding included; whole: it spans the "
                "whole input (after global pooling, flatten, or a squeeze-and-excitation branch)")


def collapse(rows: list[Row], depth: int | None, scope_blocks: dict[str, str]) -> list[Row]:
    """Rows nested `depth` or more scopes deep are folded into their scope at that depth."""
    if depth is None:
        return rows
    out: list[Row] = []
    for row in rows:
        if len(row.scopes) < depth:
            out.append(row)
            continue
        scope = row.scopes[max(depth - 1, 0)] if depth > 0 else "(network)"
        last = out[-1] if out else None
        # a shared module's next application (`use`) is a row of its own
        again = depth > 0 and "uses" in row.extra
        if last is not None and last.extra.get("collapsed") == scope and not again:
            last.params += row.params
            last.buffers += row.buffers
            last.macs += row.macs
            last.trainable += row.trainable
            last.out_shape = row.out_shape
            last.rf = row.rf
            last.extra["bytes"] += row.activation_bytes
            last.extra.pop("binds", None)
            last.extra.update(_values_of_call(row, scope, "binds"))
            continue
        kind = scope_blocks.get(scope, "group")
        merged = Row(row.id, scope, kind, row.out_shape, row.params, row.buffers, row.macs, row.rf,
                     depth, row.scopes[:depth], trainable=row.trainable, line=row.line,
                     extra={"collapsed": scope, "bytes": row.activation_bytes, **_values_of_call(row, scope)})
        out.append(merged)
    return out


def _values_of_call(row: Row, scope: str, *keys: str) -> dict:
    """What a row folded into `scope` says of named values (`keys` of "reads", "binds", "uses"):
    at the call of a block over values, the caller's values it is passed and bound to (`from h1,
    l1; as h2, l2`) rather than the names its body reads and binds them under."""
    keys = keys or ("reads", "binds", "uses")
    found = {k: row.extra[k] for k in keys if k in row.extra}
    for key in ("reads", "binds"):
        call = row.extra.get(f"call_{key}")
        if key in keys and call is not None and call[0] == scope:
            found[key] = call[1]
    return found


def _bytes(row: Row) -> int:
    return row.extra.get("bytes", row.activation_bytes)


def _record(row: Row) -> dict:
    record = {"name": row.path, "kind": row.kind, "output": list(row.out_shape), "params": row.params,
              "buffers": row.buffers, "macs": row.macs, "receptive_field": describe_field(row.rf),
              "activation_bytes": _bytes(row), "line": row.line}
    if "reads" in row.extra:
        record["reads"] = list(row.extra["reads"])
    if "binds" in row.extra:
        record["binds"] = row.extra["binds"]
    if "uses" in row.extra:
        record["uses"] = row.extra["uses"]
    return record


def dataflow(row: Row) -> str:
    """The named values a row reads and binds, and the shared module its application starts:
    `from up, c1`, `as gate`, `from c2, gate; as g`, `use encoder; from b`."""
    parts = []
    if "uses" in row.extra:
        parts.append("use " + row.extra["uses"])
    if "reads" in row.extra:
        parts.append("from " + ", ".join(row.extra["reads"]))
    if "binds" in row.extra:
        parts.append("as " + row.extra["binds"])
    return "; ".join(parts)


def totals(network) -> dict:
    return {"params": network.params, "trainable": network.trainable, "buffers": network.buffers,
            "macs": network.macs, "activation_bytes": network.activation_bytes,
            "receptive_field": network.receptive_field}


def buffers_note(network) -> str:
    """`  (BatchNorm running statistics)`: what the kinds holding the network's buffers call them."""
    notes = dict.fromkeys(REGISTRY[row.kind].buffers_note for row in network.rows if row.buffers)
    return f"  ({', '.join(notes)})" if notes else ""


def input_sizes(network) -> tuple[str, dict | None]:
    """The input sizes the network is valid for, in words and as data (`cnnspec.analysis.sizes`;
    None with the reason where the analysis cannot follow the network)."""
    from cnnspec.analysis.sizes import Unsupported

    try:
        sizes = network.input_sizes()
    except Unsupported as error:
        return f"not worked out: {error}", None
    return sizes.describe(), sizes.as_dict()


def render_summary(network, format: str = "table", depth: int | None = None, sizes: bool = False) -> str:
    """The per-layer table and the totals; with `sizes`, the input sizes the network is valid for
    too (an analysis of its own, which takes up to a second on the zoo's largest)."""
    if sizes and format == "csv":
        raise ValueError("the CSV summary has one row per layer: the input sizes are in the other formats")
    valid_sizes = input_sizes(network) if sizes else None
    rows = collapse([Row(**{k: getattr(r, k) for k in r.__dataclass_fields__}) for r in network.rows],
                    depth, network.scope_blocks)
    needs = output_needs(network.graph, network.rows)
    if format == "json":
        document = {"network": network.name, "input": list(network.input_shape), "output": list(network.output_shape),
                    **({"inputs": {name: list(shape) for name, shape in network.input_shapes.items()}}
                       if len(network.input_shapes) > 1 else {}),
                    **({"outputs": {name: {"shape": list(shape), "receptive_field": rf, **vars(needs[name])}
                                    for name, _, shape, rf in network.graph.outputs}} if network.graph.outputs else {}),
                    **totals(network), "layers": [_record(r) for r in rows]}
        if valid_sizes is not None:
            document["input_sizes"] = {"constraint": valid_sizes[0], "axes": valid_sizes[1]}
        return json.dumps(document, indent=2)
    # a spec with named values gets a column saying which value each row reads and binds
    values = any("reads" in r.extra or "binds" in r.extra or "uses" in r.extra for r in rows)
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "kind", "output", "params", "buffers", "macs", "receptive_field", "activation_bytes"]
                        + ["values"] * values)
        for r in rows:
            writer.writerow([r.path, r.kind, describe_shape(r.out_shape), r.params, r.buffers, r.macs,
                             describe_field(r.rf), _bytes(r)] + [dataflow(r)] * values)
        return buffer.getvalue()
    table = [[r.path or "-", r.kind, describe_shape(r.out_shape), f"{r.params:,}" if r.params else "-",
              f"{r.macs:,}" if r.macs else "-", describe_field(r.rf), _size(_bytes(r))] + [dataflow(r)] * values
             for r in rows]
    header = ["name", "kind", "output", "params", "MACs", "RF", "act (fp32)"] + ["values"] * values
    named = ", ".join(f"{name} {describe_shape(shape)} (RF {rf})" for name, _, shape, rf in network.graph.outputs)
    input_line = (f"{network.describe_inputs()}  ->  "
                  + (f"outputs {named}" if named else f"output {describe_shape(network.output_shape)}"))
    footer = [
        f"params:      {network.params:>16,}  ({human(network.params)})"
        + (f", {network.trainable:,} trainable" if network.trainable != network.params else ""),
        f"buffers:     {network.buffers:>16,}" + buffers_note(network),
        f"MACs:        {network.macs:>16,}  ({human(network.macs)}, conv + linear, per sample)",
        f"activations: {network.activation_bytes:>16,}  bytes fp32 per sample ({_size(network.activation_bytes)}, "
        "every layer's and merge's output)",
        f"weights:     {4 * (network.params + network.buffers):>16,}  bytes fp32 ({_size(4 * (network.params + network.buffers))})",
    ]
    if any("whole" in row[5] for row in table):
        footer.append(f"RF:          {WHOLE_LEGEND}")
    if len(network.input_shapes) > 1:
        footer.append(f"inputs:      {SEVERAL_INPUTS_LEGEND}")
    if valid_sizes is not None:
        footer.append(f"sizes:       {valid_sizes[0]}")
    outputs = _outputs_table(network, needs)
    if format == "markdown":
        lines = [f"**{network.name}**: {input_line}", "", *_markdown(header, table, {2, 3, 4, 5, 6})]
        if outputs:
            lines += ["", "What each output is computed from:", "", *_markdown(*outputs)]
        lines += [""] + [f"- {line.split(':', 1)[0]}: {line.split(':', 1)[1].strip()}" for line in footer]
        return "\n".join(lines)
    widths = [max(len(header[i]), *(len(row[i]) for row in table)) if table else len(header[i]) for i in range(len(header))]
    right = {3, 4, 5, 6}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([f"{network.name}: {input_line}", rule, line(header), rule, *(line(r) for r in table), rule,
                      *footer, *(["", "what each output is computed from:", *_aligned(*outputs)] if outputs else [])])


#: the columns of the outputs' table, and which of them are right-aligned
OUTPUT_HEADER = ["output", "shape", "RF", "params", "MACs", "act (fp32)", "layers"]
_NUMERIC = {2, 3, 4, 5, 6}


def _outputs_table(network, needs: dict) -> tuple[list[str], list[list[str]]] | None:
    """Each declared output's shape, receptive field and the figures of the layers it needs (a
    layer that several need counts in each; a module applied twice saves its weights once)."""
    if not needs:
        return None
    rows = []
    for name, _, shape, rf in network.graph.outputs:
        need = needs[name]
        rows.append([name, describe_shape(shape), rf, f"{need.params:,}", f"{need.macs:,}", _size(need.activation_bytes),
                     f"{need.layers:,}"])
    return OUTPUT_HEADER, rows


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i in _NUMERIC else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
            for cells in (header, *rows)]


def _markdown(header: list[str], rows: list[list[str]], right: set[int] = _NUMERIC) -> list[str]:
    """A Markdown table, the columns in `right` aligned right."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return (["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
            + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows])


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
