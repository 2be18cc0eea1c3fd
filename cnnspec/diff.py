"""`cnnspec diff`: what changed between two checked networks, layer by layer, in figures.

Both sides are resolved first (blocks expanded, every figure computed), so two specs written
differently that build the same network diff as identical. Rows are paired by an alignment of
the two networks' execution orders: the longest common run of layer kinds, and among those the
one that pairs the most equal state_dict paths. A pair with equal paths is matched *by path*;
one whose label moved (`features.2` -> `features.3` once a norm is inserted before it) *by
position*, and its new name is a change (checkpoints no longer load by key). Rows left over
between two pairs that share a path are paired too (a layer whose kind changed in place).

Contracts: every network-level `expect` bound of either side is evaluated on both networks;
one that held on OLD and fails on NEW *now fails*, one that failed on OLD and holds on NEW
*newly passes*.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cnnspec.analysis.stats import Row, describe_field
from cnnspec.diagnostics import SpecError
from cnnspec.graph import named_shapes, walk
from cnnspec.layers.base import describe_shape
from cnnspec.network import Network
from cnnspec.summary import collapse, dataflow
from cnnspec.wording import human

#: the version of the JSON document's fields, which `SCHEMA` describes
SCHEMA_VERSION = 1
SCHEMA = Path(__file__).resolve().parent / "schemas" / "diff.schema.json"

MERGES = ("add", "concat", "mul")

#: alignments of more row pairs than this fall back to pairing equal (path, kind) runs
MAX_ALIGNMENT_CELLS = 1_000_000


class SourceError(Exception):
    """A side that cannot be read at all (git failed, not a repository): a usage error."""


class SideError(Exception):
    """A side that was read but does not check: its diagnostics."""

    def __init__(self, source: str, diagnostics, sources):
        super().__init__(source)
        self.source, self.diagnostics, self.sources = source, diagnostics, sources


# ---------------------------------------------------------------- reading a side

@dataclass(frozen=True)
class Contract:
    """A network-level `expect METRIC OP VALUE` of one side."""

    metric: str
    op: str
    value: float
    text: str
    line: int

    def holds(self, network: Network) -> bool:
        actual = metric_of(network, self.metric)
        return {"<": actual < self.value, "<=": actual <= self.value, ">": actual > self.value,
                ">=": actual >= self.value, "==": actual == self.value, "!=": actual != self.value}[self.op]

    @property
    def statement(self) -> str:
        return f"expect {self.metric} {self.op} {self.text}"


def metric_of(network: Network, metric: str) -> int:
    """A total as `expect` names it (`flops` = 2 x MACs, `layers` without merges)."""
    layers = sum(r.kind not in MERGES for r in network.rows)
    return {"params": network.params, "macs": network.macs, "flops": 2 * network.macs, "buffers": network.buffers,
            "layers": layers, "memory": network.activation_bytes, "activations": network.activation_bytes}[metric]


@dataclass
class Side:
    source: str
    network: Network
    contracts: list[Contract]
    #: what the side's file names carry before the path in the work tree (`REV:` for a revision)
    prefix: str = ""


def is_revision(source: str) -> bool:
    """`REV:path` (not a `zoo:` name, not an existing file)."""
    return ":" in source and not source.startswith("zoo:") and not os.path.exists(source)


def load_side(source: str, config_for=None) -> Side:
    """A spec file, `zoo:NAME` or `REV:path` checked into a `Side`; `SideError` when it does not
    check, `SourceError` when git cannot give it. `config_for(path)` gives its configuration."""
    from cnnspec.network import check

    if is_revision(source):
        revision, path = source.split(":", 1)
        network = load_revision(revision, path, config_for(path) if config_for else None)
        prefix = f"{revision}:"
    else:
        network, diagnostics, sources = check(source, config=config_for(source) if config_for else None)
        if network is None:
            raise SideError(source, diagnostics, sources)
        prefix = ""
    return Side(source, network, network_contracts(network), prefix)


def top_file(network: Network) -> str:
    """The name the network's own file goes by in its spans (a `zoo:` name's file path)."""
    from cnnspec.frontend.loader import ZOO_PREFIX, resolve_name

    return str(resolve_name(network.path)) if network.path.startswith(ZOO_PREFIX) else network.path


def network_contracts(network: Network) -> list[Contract]:
    from cnnspec.frontend.parser import parse_text

    top = top_file(network)
    spec = parse_text("\n".join(dict(network.sources.files())[top]), top)
    return [Contract(s.metric, s.op, s.value, s.text, s.span.line) for s in spec.statements
            if s.node == "expect_metric"]


def _git(args: list[str], cwd: str | None = None) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as error:
        raise SourceError(f"cannot run git: {error.strerror or error}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SourceError(f"git {args[0]} failed: {message[0] if message else 'exit status ' + str(done.returncode)}")
    return done.stdout


def load_revision(revision: str, path: str, config=None) -> Network:
    """The spec `path` as it is at `revision`, its imports as they are there too.

    `path` is relative to the repository's top as in `git show REV:path` (`./` or `../`: to the
    current folder). The spec's folder tree at the revision is written to a temporary folder with
    `git archive`, since imports stay inside it, and the spec is checked there under the name
    `REV:path`.
    """
    from cnnspec.network import loads

    if not revision or revision.startswith("-"):
        # git would read `-...` as one of its options
        raise SourceError(f"`{revision}:{path}` does not name a revision: write `REV:path`, such as `HEAD~1:{path}`")
    if path.startswith(("./", "../")):
        path = os.path.join(_git(["rev-parse", "--show-prefix"]).decode().strip(), path)
    path = os.path.normpath(path).replace(os.sep, "/")
    top = _git(["rev-parse", "--show-toplevel"]).decode().strip()
    text = _git(["show", f"{revision}:{path}"], cwd=top)
    try:
        text = text.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"`{revision}:{path}` is not UTF-8 text") from None
    folder = os.path.dirname(path)
    archive = _git(["archive", "--format=tar", revision, *([folder] if folder else [])], cwd=top)
    with tempfile.TemporaryDirectory(prefix="cnnspec-diff-") as temporary:
        try:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(temporary, filter="data")
        except (tarfile.TarError, OSError) as error:
            # the "data" filter refuses links out of the tree, devices and absolute names
            raise SourceError(f"cannot write out `{folder or '.'}` at `{revision}`: {error}") from None
        root = Path(temporary, folder)
        try:
            return loads(text, path=f"{revision}:{path}", root=root, origin=root / os.path.basename(path),
                         config=config)
        except SpecError as error:
            raise SideError(f"{revision}:{path}", error.diagnostics, error.sources) from None


# ---------------------------------------------------------------- pairing rows

@dataclass
class Pair:
    old: Row | None
    new: Row | None
    matched_by: str | None = None  # "path" or "position" when both sides are there


def _match_kind(row: Row) -> str:
    # a row folded at --depth matches any other folded row: a block inlined as a group is the same
    return "(scope)" if "collapsed" in row.extra else row.kind


def align(old: list[Row], new: list[Row]) -> list[Pair]:
    """Pairs in NEW's order, removed rows where they were.

    Maximises the number of pairs of equal kind, then, among those, the pairs of equal path:
    a pair is worth `W + [paths equal]` with `W` more than any number of equal paths can add.
    """
    a = [(r.path, _match_kind(r)) for r in old]
    b = [(r.path, _match_kind(r)) for r in new]
    # the common head and tail pair up at once: a small change costs an alignment of its middle only
    lo = 0
    while lo < min(len(a), len(b)) and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < min(len(a), len(b)) - lo and a[len(a) - 1 - hi] == b[len(b) - 1 - hi]:
        hi += 1
    middle_a, middle_b = a[lo:len(a) - hi], b[lo:len(b) - hi]
    if len(middle_a) * len(middle_b) <= MAX_ALIGNMENT_CELLS:
        middle = _weighted_lcs(middle_a, middle_b)
    else:
        middle = _equal_runs(middle_a, middle_b)
    indices = ([(i, i) for i in range(lo)] + [(lo + i, lo + j) for i, j in middle]
               + [(len(a) - hi + k, len(b) - hi + k) for k in range(hi)])
    indices = _pair_leftovers_by_path(indices, a, b)
    paired = {oi for oi, _ in indices if oi is not None}
    pairs: list[Pair] = []
    i = 0
    for oi, nj in indices:
        if oi is None:
            pairs.append(Pair(None, new[nj]))
            continue
        # old rows up to this one that pair with nothing were removed here
        pairs += [Pair(old[k], None) for k in range(i, oi) if k not in paired]
        i = max(i, oi + 1)
        pairs.append(Pair(old[oi], new[nj], "path" if a[oi][0] == b[nj][0] else "position"))
    pairs += [Pair(old[k], None) for k in range(i, len(old)) if k not in paired]
    return pairs


def _weighted_lcs(a: list[tuple], b: list[tuple]) -> list[tuple[int, int]]:
    """The best order-keeping pairing of (path, kind) rows, by dynamic programming over suffixes:

    S[i][j] = max(S[i+1][j], S[i][j+1], S[i+1][j+1] + W + [path_i == path_j] if kind_i == kind_j)

    >>> _weighted_lcs([("0", "conv"), ("1", "relu")], [("0", "conv"), ("1", "bn"), ("2", "relu")])
    [(0, 0), (1, 2)]
    """
    n, m = len(a), len(b)
    weight = min(n, m) + 1
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = score[i], score[i + 1]
        path_i, kind_i = a[i]
        for j in range(m - 1, -1, -1):
            best = below[j] if below[j] > row[j + 1] else row[j + 1]
            path_j, kind_j = b[j]
            if kind_i == kind_j:
                paired = below[j + 1] + weight + (path_i == path_j)
                if paired > best:
                    best = paired
            row[j] = best
    out, i, j = [], 0, 0
    while i < n and j < m:
        if a[i][1] == b[j][1] and score[i][j] == score[i + 1][j + 1] + weight + (a[i][0] == b[j][0]):
            out.append((i, j))
            i, j = i + 1, j + 1
        elif score[i + 1][j] >= score[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _equal_runs(a: list[tuple], b: list[tuple]) -> list[tuple[int, int]]:
    from difflib import SequenceMatcher

    blocks = SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    return [(x.a + k, x.b + k) for x in blocks for k in range(x.size)]


def _pair_leftovers_by_path(indices, a, b) -> list[tuple[int | None, int | None]]:
    """Between two pairs, an unpaired old row and an unpaired new row with the same path pair up:
    a layer whose kind changed in place. The unpaired new rows are added as `(None, j)`."""
    out: list[tuple[int | None, int | None]] = []
    previous = (-1, -1)
    for pair in indices + [(len(a), len(b))]:
        removed = range(previous[0] + 1, pair[0])
        by_path = {a[i][0]: i for i in removed}
        for j in range(previous[1] + 1, pair[1]):
            out.append((by_path.pop(b[j][0], None), j))
        if pair != (len(a), len(b)):
            out.append(pair)
        previous = pair
    return out


# ---------------------------------------------------------------- comparing pairs

@dataclass
class Change:
    """An old and a new value; `delta` for counts."""

    old: object
    new: object

    @property
    def delta(self):
        if isinstance(self.old, int) and isinstance(self.new, int) and not isinstance(self.old, bool):
            return self.new - self.old
        return None

    @property
    def percent(self) -> float | None:
        delta = self.delta
        return None if delta is None or not self.old else round(100 * delta / self.old, 2)


#: a row's place in the diff: `rf_only` is a row that differs in its receptive field alone
STATUSES = ("added", "removed", "changed", "rf_only")


@dataclass
class LayerDiff:
    status: str  # one of STATUSES
    old: Row | None
    new: Row | None
    matched_by: str | None
    changes: dict[str, Change] = field(default_factory=dict)
    options: dict[str, Change] = field(default_factory=dict)
    #: where NEW says this (file as in the work tree, line), for annotations
    where: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        return (self.new or self.old).path


def rf_size(row: Row) -> int | str:
    """The receptive field as a number when it is square (so it has a delta), else `7x11`."""
    text = describe_field(row.rf)
    return int(text) if text.isdigit() else text


def activation_bytes(row: Row) -> int:
    return row.extra.get("bytes", row.activation_bytes)


def figures(row: Row) -> dict:
    return {"output": row.out_shape, "params": row.params, "macs": row.macs, "receptive_field": rf_size(row),
            "activation_bytes": activation_bytes(row)}


def options_of(nodes: dict, row: Row) -> dict:
    """A layer's bound options (its kind's parameter model) or, for a merge, its crop flag;
    `nodes` is `graph_nodes` of the row's network."""
    node = nodes.get(row.id)
    if node is None or "collapsed" in row.extra:
        return {}
    if node.node == "merge":
        return {"crop": node.crop}
    return node.params.model_dump(exclude={"kind"})


def graph_nodes(network: Network) -> dict:
    """Every layer and merge of the resolved graph by id (a row's `id` is its node's)."""
    return {node.id: node for node in walk(network.graph.body) if node.node != "seq"}


def compare(pair: Pair, old_nodes: dict, new_nodes: dict) -> LayerDiff | None:
    if pair.new is None:
        return LayerDiff("removed", pair.old, None, None)
    if pair.old is None:
        return LayerDiff("added", None, pair.new, None)
    changes = {}
    if pair.old.path != pair.new.path:
        changes["name"] = Change(pair.old.path, pair.new.path)
    if _match_kind(pair.old) != _match_kind(pair.new):
        changes["kind"] = Change(pair.old.kind, pair.new.kind)
    before, after = figures(pair.old), figures(pair.new)
    changes.update({key: Change(before[key], after[key]) for key in before if before[key] != after[key]})
    # the same layer fed from another value (or bound to another name) is another network
    if dataflow(pair.old) != dataflow(pair.new):
        changes["values"] = Change(dataflow(pair.old) or None, dataflow(pair.new) or None)
    old_options, new_options = options_of(old_nodes, pair.old), options_of(new_nodes, pair.new)
    options = {key: Change(old_options.get(key), new_options.get(key))
               for key in {**old_options, **new_options} if old_options.get(key) != new_options.get(key)}
    if not changes and not options:
        return None
    # a layer after a change sees a different receptive field though nothing about it changed
    status = "rf_only" if set(changes) == {"receptive_field"} and not options else "changed"
    return LayerDiff(status, pair.old, pair.new, pair.matched_by, changes, options)


# ---------------------------------------------------------------- the whole diff

TOTALS = ("params", "trainable", "buffers", "macs", "activation_bytes", "layers", "receptive_field")


def totals_of(network: Network) -> dict:
    field_ = network.receptive_field
    return {"params": network.params, "trainable": network.trainable, "buffers": network.buffers,
            "macs": network.macs, "activation_bytes": network.activation_bytes,
            "layers": metric_of(network, "layers"), "receptive_field": int(field_) if field_.isdigit() else field_}


@dataclass
class ContractChange:
    contract: Contract
    side: str  # the side that states it: "old", "new" or "both"
    status: str  # "now fails" or "newly passes"
    old_value: int
    new_value: int


@dataclass
class NetworkDiff:
    old: Side
    new: Side
    depth: int | None
    layers: list[LayerDiff]
    matched: dict[str, int]
    totals: dict[str, Change]
    input: Change | None
    output: Change | None
    contracts: list[ContractChange]
    #: the declared outputs (name -> shape, in order), when a side declares them and they differ
    #: in names, order or shapes; `output` is then left out
    outputs: Change | None = None
    #: the inputs (name -> shape, in order), when a side declares several and they differ; `input`
    #: is then left out
    inputs: Change | None = None

    @property
    def identical(self) -> bool:
        """Nothing of the networks differs (their names and where they are written are not compared)."""
        return not (self.layers or self.input or self.output or self.outputs or self.inputs or self.contracts
                    or any(c.old != c.new for c in self.totals.values()))


def rows_at(network: Network, depth: int | None) -> list[Row]:
    copies = [Row(**{k: getattr(r, k) for k in r.__dataclass_fields__}) for r in network.rows]
    for row in copies:
        row.extra = dict(row.extra)
    return collapse(copies, depth, network.scope_blocks)


def diff(old: Side, new: Side, depth: int | None = None) -> NetworkDiff:
    pairs = align(rows_at(old.network, depth), rows_at(new.network, depth))
    matched = {"path": 0, "position": 0}
    layers = []
    old_nodes, new_nodes = graph_nodes(old.network), graph_nodes(new.network)
    for pair in pairs:
        if pair.matched_by:
            matched[pair.matched_by] += 1
        change = compare(pair, old_nodes, new_nodes)
        if change is not None:
            if change.new is not None:
                change.where = annotation_place(new, change.new)
            layers.append(change)
    ordered = [c for status in STATUSES for c in layers if c.status == status]
    before, after = totals_of(old.network), totals_of(new.network)
    totals = {key: Change(before[key], after[key]) for key in TOTALS}
    shapes = [(Change(o, n) if o != n else None) for o, n in
              ((old.network.input_shape, new.network.input_shape), (old.network.output_shape, new.network.output_shape))]
    outputs = None
    if old.network.output_shapes or new.network.output_shapes:
        named = [list(side.network.output_shapes.items()) or [("output", side.network.output_shape)] for side in (old, new)]
        outputs = Change(dict(named[0]), dict(named[1])) if named[0] != named[1] else None
        shapes[1] = None
    inputs = None
    if len(old.network.input_shapes) > 1 or len(new.network.input_shapes) > 1:
        named = [list(side.network.input_shapes.items()) for side in (old, new)]
        inputs = Change(dict(named[0]), dict(named[1])) if named[0] != named[1] else None
        shapes[0] = None
    return NetworkDiff(old, new, depth, ordered, matched, totals, shapes[0], shapes[1], contract_changes(old, new),
                       outputs, inputs)



def contract_changes(old: Side, new: Side) -> list[ContractChange]:
    stated: dict[str, tuple[Contract, str]] = {}
    for side, name in ((old, "old"), (new, "new")):
        for contract in side.contracts:
            key = contract.statement
            stated[key] = (stated[key][0], "both") if key in stated and stated[key][1] != name else (contract, name)
    out = []
    for contract, side in stated.values():
        before, after = contract.holds(old.network), contract.holds(new.network)
        if before != after:
            out.append(ContractChange(contract, side, "newly passes" if after else "now fails",
                                      metric_of(old.network, contract.metric), metric_of(new.network, contract.metric)))
    return out


def annotation_place(side: Side, row: Row) -> tuple[str, int] | None:
    """Where NEW states a row: the innermost item around it in NEW's own file (the call of a
    block rather than the block's body), else the layer itself; the file as in the work tree."""
    top = top_file(side.network)
    found = None
    stack = [(side.network.graph.body, None)]
    while stack:
        node, place = stack.pop()
        span = getattr(node, "span", None)
        if span is not None and span.file == top:
            place = span
        if node.node == "seq":
            stack.extend((item, place) for item in node.items)
            continue
        if node.id == row.id:
            found = place or node.span
            break
        if node.node == "merge":
            stack.extend((branch, place) for branch in node.branches)
    if found is None:
        return None
    return work_tree_file(side, found.file), found.line


def work_tree_file(side: Side, file: str) -> str:
    """A side's file name as the work tree has it: without `REV:`, relative to the current folder."""
    if side.prefix and file.startswith(side.prefix):
        file = file[len(side.prefix):]
    if os.path.isabs(file) and Path(file).is_relative_to(Path.cwd()):
        file = os.path.relpath(file)
    return Path(file).as_posix()


# ---------------------------------------------------------------- formats

def show(value) -> str:
    """A value as the spec writes it: shapes and kernels `3x3`, counts with separators."""
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def signed(delta: int, compact: bool = False) -> str:
    return ("+" if delta >= 0 else "-") + (human(abs(delta)) if compact else f"{abs(delta):,}")


def percent_text(percent: float) -> str:
    """`+86.5%`; a change under a tenth of a percent keeps two decimals (`+0.01%`), not `+0.0%`."""
    return f"{percent:+.1f}%" if percent == 0 or abs(percent) >= 0.1 else f"{percent:+.2f}%"


def describe_change(change: Change) -> str:
    """`589,824 -> 2,359,296 (+1,769,472, +300.0%)`."""
    text = describe_option(change)
    delta = change.delta
    if delta is not None:
        percent = change.percent
        text += f" ({signed(delta)}" + (f", {percent_text(percent)}" if percent is not None else "") + ")"
    return text


def describe_option(change: Change) -> str:
    return f"{show(change.old)} -> {show(change.new)}"


def describe_compact(change: Change, label: str) -> str:
    """`+1.18M params (+16%)`, as a line of `--depth` reads; `RF 43 -> 59` for what is not a count."""
    if change.delta is None or label == "RF":
        return f"{label} {describe_option(change)}"
    percent = change.percent
    return f"{signed(change.delta, True)} {label}" + (f" ({percent:+.0f}%)" if percent is not None else "")


LABELS = {"name": "name", "kind": "kind", "values": "values", "output": "output", "params": "params", "macs": "MACs",
          "receptive_field": "RF", "activation_bytes": "activation bytes", "trainable": "trainable",
          "buffers": "buffers", "layers": "layers"}

_PAINT = {"+": "32", "-": "31", "~": "33", "bold": "1"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_PAINT[style]}m{text}\x1b[0m" if color else text


def _layer_line(c: LayerDiff) -> str:
    row = c.new or c.old
    return (f"{row.path}  {row.kind}  {describe_shape(row.out_shape)}  {row.params:,} params  "
            f"{row.macs:,} MACs  RF {describe_field(row.rf)}")


def matching_line(d: NetworkDiff) -> str:
    old_rows = len(rows_at(d.old.network, d.depth))
    new_rows = len(rows_at(d.new.network, d.depth))
    unit = f"rows at depth {d.depth}" if d.depth else "rows"
    return (f"{unit}: {old_rows} -> {new_rows}; matched {d.matched['path'] + d.matched['position']}: "
            f"{d.matched['path']} by path, {d.matched['position']} by position (labels moved)")


def render_text(d: NetworkDiff, color: bool = False) -> str:
    head = f"{d.old.network.name} ({d.old.source}) -> {d.new.network.name} ({d.new.source})"
    out = [_paint(head, "bold", color), matching_line(d)]
    if d.identical:
        out.append("no differences")
        return "\n".join(out)
    for label, change in (("input", d.input), ("output", d.output)):
        if change:
            out.append(f"{label}: {describe_shape(change.old)} -> {describe_shape(change.new)}")
    for label, change in (("inputs", d.inputs), ("outputs", d.outputs)):
        if change:
            out.append(f"{label}: {named_shapes(change.old)} -> {named_shapes(change.new)}")
    changed_totals = [f"  {LABELS.get(key, key):<17} {describe_change(change)}" for key, change in d.totals.items()
                      if change.old != change.new]
    if changed_totals:
        out += ["", _paint("totals", "bold", color), *changed_totals]
    if d.depth is not None:
        return "\n".join(out + _blocks_text(d, color))
    for status, mark in (("added", "+"), ("removed", "-")):
        group = [c for c in d.layers if c.status == status]
        if group:
            out += ["", _paint(f"{status} ({len(group)})", "bold", color)]
            out += [_paint(f"{mark} {_layer_line(c)}", mark, color) for c in group]
    changed = [c for c in d.layers if c.status == "changed"]
    if changed:
        out += ["", _paint(f"changed ({len(changed)})", "bold", color)]
        for c in changed:
            name = c.old.path if c.old.path == c.new.path else f"{c.old.path} -> {c.new.path}"
            out.append(_paint(f"~ {name}  {c.new.kind}", "~", color) + ("  (matched by position)" if c.matched_by == "position" else ""))
            out += [f"    {key}: {describe_option(option)}" for key, option in c.options.items()]
            out += [f"    {LABELS[key]}: {describe_change(change)}" for key, change in c.changes.items() if key != "name"]
    return "\n".join(out + _field_only_text(d) + _contracts_text(d, color))


def _field_only_text(d: NetworkDiff) -> list[str]:
    """Rows after a change whose receptive field alone differs: counted, the last one shown."""
    rows = [c for c in d.layers if c.status == "rf_only"]
    if not rows:
        return []
    last = rows[-1]
    return ["", f"receptive field only ({len(rows)}): {rows[0].name} ... {last.name} "
                f"(last: {describe_option(last.changes['receptive_field'])})"]


def _blocks_text(d: NetworkDiff, color: bool) -> list[str]:
    """`--depth`: a line a block, `layer3: +1.18M params (+16%), +0.46G MACs (+25%)`."""
    out = [""]
    for c in (c for c in d.layers if c.status != "rf_only"):
        if c.status in ("added", "removed"):
            mark = "+" if c.status == "added" else "-"
            row = c.new or c.old
            out.append(_paint(f"{mark} {row.path}: {c.status}, {human(row.params)} params, {human(row.macs)} MACs", mark,
                              color))
            continue
        name = c.old.path if c.old.path == c.new.path else f"{c.old.path} -> {c.new.path}"
        parts = [describe_compact(change, LABELS[key]) for key, change in c.changes.items() if key != "name"]
        out.append(_paint(f"~ {name}: " + ", ".join(parts or ["renamed"]), "~", color))
    return out + _field_only_text(d) + _contracts_text(d, color)


def _contract_line(c: ContractChange) -> str:
    stated = {"old": "stated by old", "new": "stated by new", "both": "stated by both"}[c.side]
    return (f"`{c.contract.statement}` ({stated}, line {c.contract.line}): "
            f"{c.contract.metric} {c.old_value:,} -> {c.new_value:,}")


def _contracts_text(d: NetworkDiff, color: bool) -> list[str]:
    if not d.contracts:
        return []
    return ["", _paint("contracts", "bold", color)] + [f"  {c.status}: {_contract_line(c)}" for c in d.contracts]


def headline(d: NetworkDiff) -> str:
    """`params 11.69M -> 21.80M (+86.5%), MACs ...; 56 layers added, 0 removed, 0 changed`."""
    counts = {status: sum(c.status == status for c in d.layers) for status in STATUSES}
    parts = []
    for key in ("params", "macs"):
        change = d.totals[key]
        text = f"{LABELS[key]} {human(change.old)} -> {human(change.new)}"
        if change.delta:
            percent = change.percent
            text += f" ({signed(change.delta, True)}" + (f", {percent_text(percent)}" if percent is not None else "") + ")"
        parts.append(text)
    unit = "blocks" if d.depth else "layers"
    return (", ".join(parts) + f"; {unit}: {counts['added']} added, {counts['removed']} removed, "
            f"{counts['changed']} changed")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(d: NetworkDiff) -> str:
    title = f"**cnnspec diff** `{d.old.source}` → `{d.new.source}`"
    if d.identical:
        return f"{title}: no differences ({matching_line(d)})\n"
    out = [f"{title}: {headline(d)}", ""]
    for label, change in (("input", d.input), ("output", d.output)):
        if change:
            out.append(f"- {label}: {describe_shape(change.old)} → {describe_shape(change.new)}")
    for label, change in (("inputs", d.inputs), ("outputs", d.outputs)):
        if change:
            out.append(f"- {label}: {_cell(named_shapes(change.old))} → {_cell(named_shapes(change.new))}")
    for c in d.contracts:
        out.append(f"- contract {c.status}: {_cell(_contract_line(c))}")
    out += ["", "| total | old | new | delta |", "|---|---:|---:|---:|"]
    for key, change in d.totals.items():
        delta = change.delta
        delta_text = "" if not delta else signed(delta) + (f" ({percent_text(change.percent)})" if change.percent is not None else "")
        out.append(f"| {LABELS.get(key, key)} | {show(change.old)} | {show(change.new)} | {delta_text} |")
    listed = [c for c in d.layers if c.status != "rf_only"]
    out += ["", f"<details><summary>{len(listed)} {'block' if d.depth else 'layer'} changes ({_cell(matching_line(d))})"
                "</summary>", "", "| | layer | kind | change |", "|---|---|---|---|"]
    for c in listed:
        mark = {"added": "+", "removed": "−", "changed": "~"}[c.status]
        row = c.new or c.old
        if c.status == "changed":
            name = c.old.path if c.old.path == c.new.path else f"{c.old.path} → {c.new.path}"
            details = [f"{key}: {describe_option(option)}" for key, option in c.options.items()]
            details += [f"{LABELS[key]}: {describe_change(change)}" for key, change in c.changes.items() if key != "name"]
            text = "; ".join(details) or "renamed"
        else:
            name = row.path
            text = f"{c.status}: {describe_shape(row.out_shape)}, {row.params:,} params, {row.macs:,} MACs"
        out.append(f"| {mark} | `{name}` | {row.kind} | {_cell(text)} |")
    out += [_cell(line) for line in _field_only_text(d)]
    out += ["", "</details>", ""]
    return "\n".join(out)


def _json_value(value):
    return list(value) if isinstance(value, tuple) else value


def _json_change(change: Change, counts: bool = True) -> dict:
    record = {"old": _json_value(change.old), "new": _json_value(change.new)}
    if counts and change.delta is not None:
        record.update(delta=change.delta, percent=change.percent)
    return record


def _json_row(row: Row | None) -> dict | None:
    if row is None:
        return None
    return {"name": row.path, "kind": row.kind, "output": list(row.out_shape), "params": row.params, "macs": row.macs,
            "receptive_field": rf_size(row), "activation_bytes": activation_bytes(row)}


def _json_side(side: Side) -> dict:
    n = side.network
    return {"source": side.source, "network": n.name, "input": list(n.input_shape), "output": list(n.output_shape)}


def to_document(d: NetworkDiff) -> dict:
    """The JSON document; its fields are described in `cnnspec/schemas/diff.schema.json`."""
    layers = []
    for c in d.layers:
        record = {"status": c.status, "name": c.name, "matched_by": c.matched_by, "old": _json_row(c.old),
                  "new": _json_row(c.new), "changes": {k: _json_change(v) for k, v in c.changes.items()},
                  "options": {k: _json_change(v, counts=False) for k, v in c.options.items()}}
        record["file"], record["line"] = c.where if c.where else (None, None)
        layers.append(record)
    contracts = [{"contract": c.contract.statement, "stated_by": c.side, "line": c.contract.line, "status": c.status,
                  "metric": c.contract.metric, "old": c.old_value, "new": c.new_value} for c in d.contracts]
    return {
        "schema_version": SCHEMA_VERSION,
        "identical": d.identical,
        "depth": d.depth,
        "old": _json_side(d.old),
        "new": _json_side(d.new),
        "matched": {"path": d.matched["path"], "position": d.matched["position"]},
        "input": _json_change(d.input) if d.input else None,
        "output": _json_change(d.output) if d.output else None,
        "outputs": _json_named(d.outputs),
        "inputs": _json_named(d.inputs),
        "totals": {k: _json_change(v) for k, v in d.totals.items()},
        "layers": layers,
        "contracts": contracts,
    }


def _json_named(change: Change | None) -> dict | None:
    return {side: {name: list(shape) for name, shape in getattr(change, side).items()} for side in ("old", "new")} if change else None


def render_json(d: NetworkDiff) -> str:
    return json.dumps(to_document(d), indent=2)


def render_github(d: NetworkDiff) -> str:
    """`::notice file=F,line=L,title=cnnspec diff::...`, one a line of NEW that states a change;
    the totals on NEW's first line."""
    from cnnspec.report import _escape_data, _escape_property

    by_line: dict[tuple[str, int], list[str]] = {}
    for c in d.layers:
        if c.where is None or c.status == "rf_only":
            continue
        if c.status == "added":
            text = f"added {c.new.path} ({c.new.kind}, {c.new.params:,} params)"
        else:
            details = [f"{LABELS[k]} {describe_change(v)}" for k, v in c.changes.items()]
            details += [f"{k} {describe_option(v)}" for k, v in c.options.items()]
            text = f"changed {c.name} ({c.new.kind}): " + ", ".join(details)
        by_line.setdefault(c.where, []).append(text)
    lines = []
    if not d.identical:
        removed = [c.old.path for c in d.layers if c.status == "removed"]
        summary = headline(d) + (f"; removed: {', '.join(removed)}" if removed else "")
        top = work_tree_file(d.new, top_file(d.new.network))
        lines.append(f"::notice file={_escape_property(top)},line=1,title={_escape_property('cnnspec diff')}::"
                     f"{_escape_data(summary)}")
    for (file, line), texts in sorted(by_line.items()):
        shown = texts[:10] + ([f"and {len(texts) - 10} more"] if len(texts) > 10 else [])
        lines.append(f"::notice file={_escape_property(file)},line={line},title={_escape_property('cnnspec diff')}::"
                     f"{_escape_data(chr(10).join(shown))}")
    return "\n".join(lines)


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json, "github": render_github}


def render(d: NetworkDiff, format: str = "text", color: bool = False) -> str:
    if format == "text":
        return render_text(d, color=color)
    return RENDERERS[format](d)
