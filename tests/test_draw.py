"""`cnnspec draw`: the diagram of every zoo network at depths 1, 2 and in full is well-formed SVG,
shows each row of the summary at that depth exactly once, and is readable: no two boxes
overlap, frames nest, no line runs through a box and no shape label sits on one."""

import json
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from click.testing import CliRunner
from conftest import QUICK_ZOO, SPECS

import cnnspec
from cnnspec.cli import main
from cnnspec.draw import layout, render
from cnnspec.draw.geometry import describe_layer

ZOO = sorted(p.stem for p in SPECS.glob("*.cnn"))
#: the zoo networks drawn at every depth in the quick run (the others behind -m slow): the small
#: ones, and between them and these every structure a diagram lays out (residual joins, inception
#: branches, dense concatenation, a cropped U, squeeze-and-excitation, several outputs and inputs)
DRAWN_QUICKLY = (*QUICK_ZOO, "resnet50", "inception_v3", "densenet121", "unet", "mobilenet_v3_large", "resnet50_fpn")
SVG = "{http://www.w3.org/2000/svg}"
EPS = 0.5


@pytest.fixture(scope="module")
def networks():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = cnnspec.load(SPECS / f"{name}.cnn")
        return cache[name]

    return get


def summary_rows(network, depth):
    """(name, kind) of every row of `summary --format json` at that depth."""
    return [(r["name"], r["kind"]) for r in json.loads(network.summary(format="json", depth=depth))["layers"]]


def interiors_meet(a, b) -> bool:
    """Whether two rectangles (x, y, w, h) share area beyond touching edges."""
    return a[0] + EPS < b[0] + b[2] and b[0] + EPS < a[0] + a[2] and a[1] + EPS < b[1] + b[3] and b[1] + EPS < a[1] + a[3]


def contains(outer, inner) -> bool:
    return (outer[0] <= inner[0] + EPS and outer[1] <= inner[1] + EPS and inner[0] + inner[2] <= outer[0] + outer[2] + EPS
            and inner[1] + inner[3] <= outer[1] + outer[3] + EPS)


def crosses(segment, rect) -> bool:
    """Whether an axis-parallel segment enters the open interior of a rectangle."""
    x1, y1, x2, y2 = segment
    return (min(x1, x2) < rect[0] + rect[2] - EPS and max(x1, x2) > rect[0] + EPS
            and min(y1, y2) < rect[1] + rect[3] - EPS and max(y1, y2) > rect[1] + EPS)


def rect(item):
    return (item.x, item.y, item.w, item.h)


class Grid:
    """Rectangles bucketed by the square cells they touch, so that a query looks at its
    neighbours only (the all-pairs checks took seconds on the largest networks)."""

    CELL = 200

    def __init__(self, rects):
        self.rects = rects
        self.cells = {}
        for i, r in enumerate(rects):
            for cell in self._cells(r):
                self.cells.setdefault(cell, []).append(i)

    def _cells(self, r):
        x0, y0 = int(r[0] // self.CELL), int(r[1] // self.CELL)
        x1, y1 = int((r[0] + r[2]) // self.CELL), int((r[1] + r[3]) // self.CELL)
        return [(i, j) for i in range(x0, x1 + 1) for j in range(y0, y1 + 1)]

    def near(self, r):
        """Indices of the rectangles sharing a cell with r."""
        return sorted({i for cell in self._cells(r) for i in self.cells.get(cell, ())})


def segment_rect(segment):
    x1, y1, x2, y2 = segment
    return (min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1))


@pytest.mark.parametrize("depth, direction", [(1, "down"), (2, "down"), (None, "down"), (None, "right")],
                         ids=["depth1", "depth2", "full", "full-right"])
@pytest.mark.parametrize("name", [name if name in DRAWN_QUICKLY else pytest.param(name, marks=pytest.mark.slow)
                                  for name in ZOO])
def test_zoo_diagram_shows_every_row_once_without_overlaps(networks, name, depth, direction):
    network = networks(name)
    drawing = layout(network, depth, direction)
    root = ET.fromstring(render(network, "svg", depth, direction))
    assert root.tag == f"{SVG}svg"
    # every summary row at this depth is one box, matched by path and kind
    drawn = Counter((g.get("data-path"), g.get("data-kind")) for g in root.iter(f"{SVG}g") if g.get("data-row"))
    assert drawn == Counter(summary_rows(network, depth))
    rows = [g.get("data-row") for g in root.iter(f"{SVG}g") if g.get("data-row")]
    assert len(rows) == len(set(rows))
    # the SVG's rectangles are the layout's boxes
    rects = [(float(r.get("x")), float(r.get("y"))) for g in root.iter(f"{SVG}g")
             if "box" in (g.get("class") or "") for r in g.iter(f"{SVG}rect")]
    assert len(rects) == sum(b.role != "join" for b in drawing.boxes)

    boxes = [rect(b) for b in drawing.boxes]
    frames = [rect(f) for f in drawing.frames]
    grid = Grid(boxes)
    for i, a in enumerate(boxes):
        assert not any(interiors_meet(a, boxes[j]) for j in grid.near(a) if j != i), drawing.boxes[i].text
    for frame in frames:
        for j in grid.near(frame):
            assert contains(frame, boxes[j]) or not interiors_meet(frame, boxes[j])
    for i, a in enumerate(frames):
        for b in frames[i + 1:]:
            assert contains(a, b) or contains(b, a) or not interiors_meet(a, b)
    for segment in drawing.segments:
        assert segment[0] == segment[2] or segment[1] == segment[3], "lines run along the axes"
        assert not any(crosses(segment, boxes[j]) for j in grid.near(segment_rect(segment))), segment
    for label in drawing.labels:
        assert not any(interiors_meet(rect(label), boxes[j]) for j in grid.near(rect(label))), label.text
    for item in drawing.boxes + drawing.frames + drawing.labels:
        assert 0 <= item.x and item.x + item.w <= drawing.width + EPS
        assert 0 <= item.y and item.y + item.h <= drawing.height + EPS


def connected_boxes(drawing) -> list[set[int]]:
    """The boxes (by index) that lines join into one picture, in groups: segments meeting at
    their ends, on another segment (a rail) or at a box's border."""
    points = {}

    def find(p):
        while points.setdefault(p, p) != p:
            p = points[p]
        return p

    def union(a, b):
        points[find(a)] = find(b)

    def key(x, y):
        return (round(x, 1), round(y, 1))

    ends = []
    for x1, y1, x2, y2 in drawing.segments:
        union(key(x1, y1), key(x2, y2))
        ends += [(x1, y1), (x2, y2)]
    segments = Grid([segment_rect(s) for s in drawing.segments])
    boxes = Grid([rect(b) for b in drawing.boxes])
    for x, y in ends:
        point = (x - EPS, y - EPS, 2 * EPS, 2 * EPS)
        for i in segments.near(point):
            sx, sy, sw, sh = segments.rects[i]
            if sx - EPS <= x <= sx + sw + EPS and sy - EPS <= y <= sy + sh + EPS:
                union(key(x, y), key(sx, sy))
        for i in boxes.near(point):
            bx, by, bw, bh = boxes.rects[i]
            if bx - EPS <= x <= bx + bw + EPS and by - EPS <= y <= by + bh + EPS:
                union(("box", i), key(x, y))
    groups: dict = {}
    for i in range(len(drawing.boxes)):
        groups.setdefault(find(("box", i)), set()).add(i)
    return list(groups.values())


@pytest.mark.parametrize("name", ["resnet50", "inception_v3", "unet", "densenet121"])
def test_lines_connect_the_input_to_the_output(networks, name):
    """The segments and boxes form one connected picture: every box is reached from the input
    through lines that meet at their ends or at a box's border."""
    assert len(connected_boxes(layout(networks(name), None, "right"))) == 1


@pytest.mark.parametrize("direction", ["down", "right"])
def test_a_statement_from_a_named_value_starts_at_its_tag_with_no_line_into_it(direction):
    network = cnnspec.loads(BRANCHY_VALUES)
    drawing = layout(network, None, direction)
    tags = [b.text[0] for b in drawing.boxes if b.kind == "value"]
    reads = [f"from {name}" for row in network.rows for name in row.extra.get("reads", ())]
    binds = [f"as {row.extra['binds']}" for row in network.rows if "binds" in row.extra]
    assert sorted(tags) == sorted(reads + binds)
    groups = connected_boxes(drawing)
    # every box is reached from the input or from the tag of a value it reads ...
    for group in groups:
        starts = [drawing.boxes[i].text[0] for i in group if drawing.boxes[i].kind in ("input", "value")
                  and drawing.boxes[i].text[0].startswith(("from ", "x:"))]
        assert starts, [drawing.boxes[i].text for i in group]
    # ... and a `from` tag is where a line starts, never where one ends
    def on_entry(box, x, y):
        if direction == "down":
            return abs(y - box.y) <= EPS and box.x - EPS <= x <= box.x + box.w + EPS
        return abs(x - box.x) <= EPS and box.y - EPS <= y <= box.y + box.h + EPS

    ends = [(x, y) for x1, y1, x2, y2 in drawing.segments for x, y in ((x1, y1), (x2, y2))]
    for box in drawing.boxes:
        if box.text[0].startswith("from "):
            assert not any(on_entry(box, x, y) for x, y in ends), box.text
    assert len(groups) == 7


def test_boxes_say_the_kind_and_key_options(networks):
    resnet = networks("resnet50")
    texts = {b.path: b.text for b in layout(resnet).boxes if b.role == "layer"}
    assert texts["conv1"] == ("conv1: conv 64 7x7 /2",)
    assert texts["3"] == ("maxpool 3x3 /2",) and texts["layer1.0.conv1"] == ("conv1: conv 64 1x1",)
    assert texts["fc"] == ("fc: linear 1000",)
    titles = {f.scope: f.title for f in layout(resnet).frames}
    assert titles["layer2.0"] == "layer2.0: bottleneck(128, stride=2)"
    assert titles["layer2.0.downsample"] == "downsample"
    unet = {describe_layer(layer) for layer in networks("unet").graph.layers()}
    assert {"deconv 512 2x2 ↑2", "maxpool 2x2", "conv 2 1x1"} <= unet


def test_collapsed_groups_carry_their_params_and_macs(networks):
    network = networks("resnet18")
    groups = {b.path: b for b in layout(network, 2).boxes if b.role == "group"}
    assert set(groups) == {f"layer{i}.{j}" for i in range(1, 5) for j in range(2)}
    for path, box in groups.items():
        rows = [r for r in network.rows if r.path.startswith(path + ".") or r.path == path]
        params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
        assert box.text[1] == f"{params:,} params · {macs / 1e6:.2f}M MACs"
    assert groups["layer2.0"].text == ("layer2.0: basic(128, stride=2)", "230,144 params · 179.83M MACs")
    # at depth 1 the whole stage is one box: 73,984 * 2 params
    stage = {b.path: b for b in layout(network, 1).boxes}["layer1"]
    assert stage.text == ("layer1", "147,968 params · 462.42M MACs")


def test_merges_are_joins_with_their_branches_side_by_side(networks):
    drawing = layout(networks("inception_v3"), None)
    joins = [b for b in drawing.boxes if b.role == "join"]
    # 11 Inception modules, and the 3x1 / 1x3 splits inside each branch pair of Mixed_7b and Mixed_7c
    assert Counter(b.text[0] for b in joins) == Counter({"++": 11 + 2 * 2})
    first = next(f for f in drawing.frames if f.scope == "Mixed_5b")
    branches = [f for f in drawing.frames if f.scope.startswith("Mixed_5b.branch") and f.scope.endswith(("1x1", "_1", "pool"))]
    tops = sorted(branches, key=lambda f: f.x)
    # the four branches start side by side (the pool branch's avgpool sits above its frame)
    assert len({round(f.x) for f in tops}) == len(tops) and all(contains(rect(first), rect(f)) for f in tops)
    residuals = [b for b in layout(networks("resnet18")).boxes if b.role == "join"]
    assert len(residuals) == 8 and {b.text for b in residuals} == {("+",)}


def test_right_direction_turns_the_flow(networks):
    network = networks("lenet5")
    down, right = layout(network, None, "down"), layout(network, None, "right")
    assert down.height > down.width and right.width > right.height
    xs = [b.x for b in right.boxes]
    assert xs == sorted(xs)


def test_png_and_dot(networks, tmp_path):
    pytest.importorskip("PIL", reason="the PNG needs Pillow (the images extra)")
    from PIL import Image

    network = networks("resnet18")
    out = tmp_path / "net.png"
    result = CliRunner().invoke(main, ["draw", str(SPECS / "resnet18.cnn"), "-o", str(out), "--depth", "2"])
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    drawing = layout(network, 2)
    assert image.size == (round(drawing.width), round(drawing.height))
    assert len(image.getcolors(1 << 16) or ()) > 2
    dot = render(network, "dot", 2).decode()
    assert dot.startswith('digraph "resnet18"') and dot.count("subgraph cluster_") == 4
    nodes = dot.count("shape=box3d")
    assert nodes == 8 and dot.count("->") == len(summary_rows(network, 2)) + 1


BRANCHY_VALUES = """network branchy
input x: 3x24x24
c1 = stem: { conv 8 3x3 pad=1; bn; relu }
gate = c1 -> avgpool global, conv 8 1x1, sigmoid
g = scale(c1, gate)
down = g -> conv 16 3x3 stride=2 pad=1, relu
side = c1 -> maxpool 2x2, conv 16 1x1
both = concat(down, side)
head = both -> avgpool global, flatten, linear 5
output head, side
"""


def dot_edges(dot: str) -> set[tuple[str, str]]:
    """The DOT text's edges as (source label, target label); the labels are unique in the specs below."""
    import re

    labels = dict(re.findall(r'^\s*(n\d+) \[label="([^"]*)"', dot, re.M))
    return {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(n\d+) -> (n\d+)", dot, re.M)}


def test_dot_wires_named_values_inputs_and_outputs_where_the_tensors_flow():
    network = cnnspec.loads("""input x: 3x16x16
input y: 3x16x16
a = conv 4 1x1
b = a -> conv 6 3x3 pad=1
c = y -> conv 5 1x1
joined = concat(a, b, c)
top = joined -> maxpool 2x2
side = b -> sigmoid
output top, side, a
""")
    assert dot_edges(render(network, "dot").decode()) == {
        ("x: 3x16x16", "conv 4 1x1"), ("conv 4 1x1", "conv 6 3x3"), ("y: 3x16x16", "conv 5 1x1"),
        ("conv 4 1x1", "++"), ("conv 6 3x3", "++"), ("conv 5 1x1", "++"), ("++", "maxpool 2x2"),
        ("conv 6 3x3", "sigmoid"), ("maxpool 2x2", "top: 15x8x8"), ("sigmoid", "side: 6x16x16"),
        ("conv 4 1x1", "a: 4x16x16")}


def test_draw_command_errors_are_diagnostics(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text("input x: 3x32x32\nconv 8 3x3 stride=0\n")
    result = CliRunner().invoke(main, ["draw", str(bad), "-o", str(tmp_path / "x.svg")])
    assert result.exit_code == 1 and "error[" in result.output and not (tmp_path / "x.svg").exists()
    result = CliRunner().invoke(main, ["draw", str(SPECS / "lenet5.cnn"), "-o", str(tmp_path / "no" / "x.svg")])
    assert result.exit_code == 1 and "cannot write" in result.output
    result = CliRunner().invoke(main, ["draw", str(SPECS / "lenet5.cnn"), "-o", str(tmp_path / "x.svg"),
                                       "--depth", "0"])
    assert result.exit_code == 2
    out = tmp_path / "net.svg"
    result = CliRunner().invoke(main, ["draw", str(SPECS / "lenet5.cnn"), "-o", str(out), "--direction", "right"])
    assert result.exit_code == 0 and ET.parse(out).getroot().get("data-network") == "lenet5"


def test_draw_a_scope_alone(networks, tmp_path):
    network = networks("inception_v3")
    drawing = layout(network, None, "down", "Mixed_5b")
    io = [b.text[0] for b in drawing.boxes if b.role == "io"]
    assert io == ["in: 192x35x35", f"output {64 + 64 + 96 + 32}x35x35"]
    assert {b.path for b in drawing.boxes if b.row} == {r.path for r in network.rows if "Mixed_5b" in r.scopes}
    result = CliRunner().invoke(main, ["draw", str(SPECS / "inception_v3.cnn"), "--scope", "Mixed5b",
                                       "-o", str(tmp_path / "x.svg")])
    assert result.exit_code == 1 and "did you mean `Mixed_5b`" in result.output


def test_docs_pictures_are_current():
    """docs/pictures.md and its SVGs are what `python -m cnnspec.draw.docs` writes; the filter
    picture's pixels are within a small tolerance (fonts and PNG encoders vary by version)."""
    from conftest import ROOT

    from cnnspec.draw import docs

    hint = "run `python -m cnnspec.draw.docs`"
    assert (ROOT / "docs" / "pictures.md").read_text() == docs.markdown(), hint
    for name, text in docs.diagram_files(ROOT).items():
        assert (ROOT / "docs" / "pictures" / name).read_text() == text, f"{name}: {hint}"
    np = pytest.importorskip("numpy", reason="the filter picture needs numpy, torch and Pillow")
    pytest.importorskip("torch", reason="the filter picture needs torch")
    image = pytest.importorskip("PIL.Image", reason="the filter picture needs Pillow")
    stored = np.asarray(image.open(ROOT / "docs" / "pictures" / docs.FILTER_PICTURE).convert("L"), dtype=float)
    fresh = np.asarray(docs.filter_picture(ROOT), dtype=float)
    assert stored.shape == fresh.shape, hint
    assert np.abs(stored - fresh).mean() < 1.0, hint
