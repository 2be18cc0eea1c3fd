"""A network's diagram as boxes, frames, segments and labels, laid out from the graph's nesting.

The layout is recursive, in two axes: the *main* axis is the direction of flow (down or right),
the *cross* axis the other one. Each node of the graph becomes a piece of a known size with a
*port*, the cross position where its input enters at the start and its output leaves at the
end:

- a sequence stacks its pieces along the main axis with their ports on one line, a gap between
  neighbours carrying the tensor's shape;
- a merge forks its input on a rail, lays its branches side by side (an empty branch, the
  identity, is a bare line), brings each down to a second rail and joins them in a node
  (`+`, `++` for concat, `x` for scale);
- a block call or labelled group is a frame around its content, titled with its label and
  call, or one box carrying its params and MACs when it is nested `depth` scopes deep.

Pieces never share area with their siblings, and every line runs through the gaps between them
(along a port line, a rail, or a branch's own column), so boxes never overlap and no segment
crosses a box it does not end at, by construction; `tests/test_draw.py` checks both on the zoo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnspec.analysis.stats import Row
from cnnspec.graph import scopes_under, walk
from cnnspec.layers import REGISTRY
from cnnspec.layers.base import describe_shape
from cnnspec.summary import collapse
from cnnspec.wording import human

#: monospace text: the width of a character and the height of a line, in pixels at 11px
CHAR = 6.7
LINE = 14
LABEL_CHAR = 6.1  # shape labels are 10px
PAD = 8  # inside a frame
GAP = 26  # between neighbours in a sequence (down): room for a shape label
FORK = 22  # from a merge's input to its branches
BRANCH_GAP = 18
JOIN = 20  # a join node's diameter
IDENTITY = 14  # the width of an empty branch's column

JOIN_SYMBOL = {"add": "+", "concat": "++", "mul": "×"}


@dataclass
class Box:
    """A layer, a collapsed group, a join or the network's input or output, in pixels."""

    x: float
    y: float
    w: float
    h: float
    role: str  # layer | group | join | io
    text: tuple[str, ...]
    path: str | None = None
    row: Row | None = None
    kind: str = ""


@dataclass
class Frame:
    x: float
    y: float
    w: float
    h: float
    scope: str
    title: str
    row: Row | None = None


@dataclass
class Label:
    """A shape label; (x, y, w, h) is the rectangle its text occupies."""

    x: float
    y: float
    w: float
    h: float
    text: str


@dataclass
class Drawing:
    name: str
    direction: str
    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    segments: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


# ------------------------------------------------------------------ describing layers
def describe_layer(node) -> str:
    """The kind and its key options, as `conv 64 3x3 /2` or `maxpool 3x3 /2` (the kind's `brief`)."""
    return " ".join([node.kind, *REGISTRY[node.kind].brief(node.params, max(len(node.in_shape) - 1, 1))])


def value_name(key: str) -> str:
    """The name a value key stands for: `c2` of `:c2` or `layer1:c2#2` (a module's second `c2`)."""
    return key.rsplit(":", 1)[-1].split("#", 1)[0]


def _short_name(path: str) -> str | None:
    """A layer's own label (`conv1` of `layer1.0.conv1`), None for a positional one."""
    last = path.rsplit(".", 1)[-1]
    return None if not last or last.isdigit() else last


def layer_text(node) -> str:
    name = _short_name(node.path)
    described = describe_layer(node)
    return f"{name}: {described}" if name and name != node.kind else described


def call_text(seq, sources) -> str:
    """A block call as written (`bottleneck(128, stride=2)`), else with its bound arguments."""
    span = seq.span
    if sources is not None and span is not None and span.line == span.end_line:
        written = (sources.line(span.file, span.line) or "")[span.column - 1:span.end_column - 1].strip()
        if written == seq.block or (written.startswith(seq.block + "(") and written.endswith(")")):
            return written
    args = ", ".join(f"{v}" if i == 0 else f"{k}={v}" for i, (k, v) in enumerate(seq.args))
    return f"{seq.block}({args})"


def scope_title(seq, parent: str | None, sources=None) -> str:
    """`layer2.0: bottleneck(128, stride=2)` for a block call, the label alone for a group; the
    name relative to the enclosing scope (`branch1x1` in `Mixed_5b`) unless that is a number."""
    name = seq.scope
    if parent and name.startswith(parent + ".") and not name[len(parent) + 1:][:1].isdigit():
        name = name[len(parent) + 1:]
    return name if seq.block is None else f"{name}: {call_text(seq, sources)}"


def figures(row: Row) -> str:
    return f"{row.params:,} params · {human(row.macs)} MACs"


# ------------------------------------------------------------------ pieces
@dataclass
class Piece:
    """A laid-out node in main/cross coordinates: extent `length` x `width`, its port at
    cross offset `port`; `prims` in local coordinates."""

    length: float
    width: float
    port: float
    out_shape: tuple
    prims: list
    #: it starts from a named value, not from what comes before it: nothing is wired into it
    detached: bool = False


def _shift(prims, du, dv):
    out = []
    for prim in prims:
        tag = prim[0]
        if tag == "seg":
            _, u1, v1, u2, v2 = prim
            out.append(("seg", u1 + du, v1 + dv, u2 + du, v2 + dv))
        else:
            out.append((tag, prim[1] + du, prim[2] + dv, *prim[3:]))
    return out


class Layout:
    def __init__(self, network, depth: int | None, direction: str):
        if direction not in ("down", "right"):
            raise ValueError(f"direction must be 'down' or 'right', not {direction!r}")
        if depth is not None and depth < 1:
            raise ValueError(f"depth must be 1 or more, not {depth}")
        self.network = network
        self.depth = depth
        self.down = direction == "down"
        self.direction = direction
        self.rows = {row.id: row for row in network.rows}
        #: each named value's shape, by key, once its binding is laid out
        self.value_shapes: dict[str, tuple] = {key: shape for _, key, shape in network.graph.inputs}
        collapsed = [row for row in collapse(self._copies(network.rows), depth, network.scope_blocks)
                     if "collapsed" in row.extra]
        self.collapsed = {row.path: row for row in collapsed}
        #: the same by the id of each one's first row: a module applied again (`use`) is a box per
        #: application, under one path
        self.collapsed_at = {row.id: row for row in collapsed}

    @staticmethod
    def _copies(rows):
        return [Row(**{k: getattr(r, k) for k in r.__dataclass_fields__}) for r in rows]

    # sizes: a text box is (w, h) in pixels; in main/cross it is (h, w) going down, (w, h) going right
    def _extent(self, w, h):
        return (h, w) if self.down else (w, h)

    def _text_box(self, lines, role, **info) -> Piece:
        w = max(len(line) for line in lines) * CHAR + 16
        h = len(lines) * LINE + 10
        length, width = self._extent(w, h)
        return Piece(length, width, width / 2, info.pop("out_shape"),
                     [("box", 0, 0, length, width, role, tuple(lines), info)])

    def _label_room(self, text):
        """A shape label beside a line: (main length it needs, cross offsets from the line)."""
        w = len(text) * LABEL_CHAR
        if self.down:
            return 14, (5, 5 + w)
        return w + 12, (-15, -3)

    def _label(self, u, length, v, text):
        """The label of a line at cross position v, centred in the main range u .. u + length."""
        w = len(text) * LABEL_CHAR
        if self.down:
            return ("label", u + (length - 12) / 2, v + 5, 12, w, text)
        return ("label", u + (length - w) / 2, v - 15, w, 12, text)

    # ------------------------------------------------------------ nodes
    def node(self, item, outer: tuple) -> Piece | None:
        if item.node == "layer":
            return self._text_box([layer_text(item)], "layer", path=item.path, row=self.rows.get(item.id),
                                  kind=item.kind, out_shape=item.out_shape)
        if item.node == "merge":
            return self.merge(item, outer)
        piece = self.sequence(item.items, outer) if item.scope is None else self.scope(item, outer)
        if item.source is None and (item.bind is None or piece is None):
            return piece
        return self.with_values(item, piece)

    def with_values(self, seq, piece: Piece | None) -> Piece:
        """A statement's piece between the tags of the values it reads (`from c2`, with nothing
        wired into it) and binds (`as p4`, the line going on); a merge's operand is the tag alone."""
        parts = []
        if seq.source is not None:
            shape = self.value_shapes.get(seq.source, piece.out_shape if piece is not None else ())
            parts.append(self._text_box([f"from {value_name(seq.source)}"], "io", path=None, row=None, kind="value",
                                        out_shape=shape))
        if piece is not None:
            parts.append(piece)
        if seq.bind is not None:
            shape = parts[-1].out_shape
            self.value_shapes[seq.bind] = shape
            parts.append(self._text_box([f"as {value_name(seq.bind)}"], "io", path=None, row=None, kind="value",
                                        out_shape=shape))
        whole = self.stack(parts)
        whole.detached = seq.source is not None
        return whole

    def sequence(self, items, outer: tuple) -> Piece | None:
        return self.stack([p for p in (self.node(item, outer) for item in items) if p is not None])

    def stack(self, pieces) -> Piece | None:
        """Pieces one after the other, their ports on one line, each gap labelled with the shape."""
        if not pieces:
            return None
        gaps = []
        for piece in pieces[:-1]:
            text = describe_shape(piece.out_shape)
            length, (a, b) = self._label_room(text)
            gaps.append((max(GAP, length), a, b, text))
        port = max([p.port for p in pieces] + [-a for _, a, _, _ in gaps])
        width = max([port - p.port + p.width for p in pieces] + [port + b for _, _, b, _ in gaps])
        prims, u = [], 0.0
        for i, piece in enumerate(pieces):
            prims += _shift(piece.prims, u, port - piece.port)
            u += piece.length
            if i < len(gaps):
                gap, _, _, text = gaps[i]
                if not pieces[i + 1].detached:
                    prims.append(("seg", u, port, u + gap, port))
                    prims.append(self._label(u, gap, port, text))
                u += gap
        return Piece(u, width, port, pieces[-1].out_shape, prims, detached=pieces[0].detached)

    def merge(self, node, outer: tuple) -> Piece:
        columns = []  # (piece or None, end label or None)
        for branch in node.branches:
            piece = self.node(branch, outer)
            shape = piece.out_shape if piece is not None else node.in_shape
            label = describe_shape(shape) if tuple(shape) != tuple(node.out_shape) else None
            columns.append((piece, label))
        # each column's cross extent, with room for its end label
        placed, v = [], 0.0
        ends = FORK
        for piece, label in columns:
            port, width, length = (IDENTITY / 2, IDENTITY, 0) if piece is None else (piece.port, piece.width,
                                                                                     piece.length)
            room = 10
            if label is not None:
                need, (a, b) = self._label_room(label)
                room = need + 6
                port = max(port, -a)
                width = max(width, port + b)
            placed.append((piece, label, v, port, length))
            ends = max(ends, FORK + length + room)
            v += width + BRANCH_GAP
        total = v - BRANCH_GAP
        ports = [v0 + port for _, _, v0, port, _ in placed]
        if node.op == "add" and len(ports) == 2:
            port = ports[0]  # a residual's main path runs straight, its shortcut beside it
        else:
            port = (ports[0] + ports[-1]) / 2
        rail_in, rail_out = FORK / 2, ends
        # a merge of named values (`add(a, b)`) takes nothing from what comes before it
        detached = all(piece is not None and piece.detached for piece, _, _, _, _ in placed)
        prims = [] if detached else [("seg", 0, port, rail_in, port)]
        low, high = min(ports + [port]), max(ports + [port])
        wired = [line for (piece, *_), line in zip(placed, ports) if piece is None or not piece.detached]
        if wired and not detached and max(wired + [port]) > min(wired + [port]):
            prims.append(("seg", rail_in, min(wired + [port]), rail_in, max(wired + [port])))
        if high > low:
            prims.append(("seg", rail_out, low, rail_out, high))
        for (piece, label, v0, col_port, length), line in zip(placed, ports):
            if piece is None:
                prims.append(("seg", rail_in, line, rail_out, line))
                continue
            if not piece.detached:
                prims.append(("seg", rail_in, line, FORK, line))
            prims += _shift(piece.prims, FORK, v0 + col_port - piece.port)
            prims.append(("seg", FORK + length, line, rail_out, line))
            if label is not None:
                prims.append(self._label(FORK + length, rail_out - FORK - length, line, label))
        prims.append(("seg", rail_out, port, rail_out + 8, port))
        row = self.rows.get(node.id)
        prims.append(("box", rail_out + 8, port - JOIN / 2, JOIN, JOIN, "join", (JOIN_SYMBOL[node.op],),
                      {"path": node.path, "row": row, "kind": row.kind if row is not None else node.op}))
        return Piece(rail_out + 8 + JOIN, total, port, node.out_shape, prims, detached=detached)

    def scope(self, seq, outer: tuple) -> Piece | None:
        if self.depth is not None and len(outer) + 1 >= self.depth:
            first = next(applied_layers(seq), None)
            row = self.collapsed_at.get(first.id) if first is not None else None
            if row is None:  # a scope without layers (an inactive shortcut)
                return None
            title = scope_title(seq, outer[-1] if outer else None, self.network.sources)
            return self._text_box([title, figures(row)], "group", path=seq.scope, row=row,
                                  kind=row.kind, out_shape=row.out_shape)
        content = self.sequence(seq.items, outer + (seq.scope,))
        if content is None:
            return None
        title = scope_title(seq, outer[-1] if outer else None, self.network.sources)
        tw = len(title) * CHAR
        if self.down:
            off_u = PAD + LINE + 6
            v0 = max(PAD, PAD + tw + 10 - content.port)  # the port line passes right of the title
            port = v0 + content.port
            width = max(v0 + content.width + PAD, PAD + tw + PAD)
            length = off_u + content.length + PAD
            prims = [("seg", 0, port, off_u, port)]
            end = off_u + content.length
        else:
            off_u, v0 = PAD, PAD + LINE + 6
            port = v0 + content.port
            width = v0 + content.width + PAD
            length = max(PAD + content.length + PAD, tw + 2 * PAD)
            prims = [("seg", 0, port, off_u, port)]
            end = off_u + content.length
        frame = ("frame", 0, 0, length, width, seq.scope, title)
        prims = [frame] + prims + _shift(content.prims, off_u, v0) + [("seg", end, port, length, port)]
        return Piece(length, width, port, content.out_shape, prims)

    # ------------------------------------------------------------ the whole network
    def run(self, scope: str | None = None) -> Drawing:
        net = self.network
        name, shapes = net.graph.input_name, (net.input_shape, net.output_shape)
        if scope is None:
            body = self.sequence(net.graph.body.items, ())
        else:
            seq, outer = find_scope(net, scope)
            body = self.scope(seq, outer)
            name, shapes = "in", scope_shapes(seq)
        source = self._text_box([f"{name}: {describe_shape(shapes[0])}"], "io", out_shape=shapes[0], path=None,
                                row=None, kind="input")
        outputs = net.graph.outputs if scope is None else ()
        sink_text = ("outputs " + ", ".join(name for name, *_ in outputs) if outputs
                     else f"output {describe_shape(shapes[1])}")
        sink = self._text_box([sink_text], "io", out_shape=shapes[1], path=None, row=None, kind="output")
        whole = self.stack([source] + ([body] if body else []) + [sink])
        margin = 10
        drawing = Drawing(net.name, self.direction, 0, 0)
        for prim in _shift(whole.prims, margin, margin):
            self._emit(drawing, prim)
        length, width = whole.length + 2 * margin, whole.width + 2 * margin
        drawing.width, drawing.height = (width, length) if self.down else (length, width)
        return drawing

    def _xy(self, u, v, lu, lv):
        return (v, u, lv, lu) if self.down else (u, v, lu, lv)

    def _emit(self, drawing: Drawing, prim) -> None:
        tag = prim[0]
        if tag == "seg":
            _, u1, v1, u2, v2 = prim
            drawing.segments.append((v1, u1, v2, u2) if self.down else (u1, v1, u2, v2))
        elif tag == "box":
            _, u, v, lu, lv, role, text, info = prim
            drawing.boxes.append(Box(*self._xy(u, v, lu, lv), role, text, **info))
        elif tag == "frame":
            _, u, v, lu, lv, scope, title = prim
            drawing.frames.append(Frame(*self._xy(u, v, lu, lv), scope, title, self.collapsed.get(scope)))
        else:
            _, u, v, lu, lv, text = prim
            x, y, w, h = self._xy(u, v, lu, lv)
            drawing.labels.append(Label(x, y, w, h, text))


def applied_layers(node):
    """The layers a scope runs, in execution order: a shared module's application's too."""
    return (item for item in walk(node) if item.node == "layer")


def scope_shapes(seq) -> tuple:
    """A scope's input and output shapes: its first layer's input, its last item's output."""
    first = next(applied_layers(seq))
    last = seq
    while last.node == "seq":
        last = next(item for item in reversed(last.items) if any(True for _ in applied_layers(item)))
    return first.in_shape, last.out_shape


def find_scope(network, scope: str):
    """The block call or labelled group named `scope`, with the scopes around it."""
    from cnnspec.wording import closest

    found = {seq.scope: (seq, outer) for seq, outer in scopes_under(network.graph.body)
             if any(True for _ in applied_layers(seq))}
    if scope not in found:
        near = closest(scope, list(found))
        raise ValueError(f"`{scope}` names no block call or group of `{network.name}` with layers"
                         + (f"; did you mean `{near}`?" if near else ""))
    return found[scope]


def layout(network, depth: int | None = None, direction: str = "down", scope: str | None = None) -> Drawing:
    """The diagram of a checked network (or of one block call or group in it, `scope`), blocks and
    groups nested `depth` deep in the network collapsed."""
    return Layout(network, depth, direction).run(scope)
