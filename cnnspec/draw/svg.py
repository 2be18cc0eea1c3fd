"""A `Drawing` as SVG, or as PNG drawn with Pillow from the same layout."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from cnnspec.draw.geometry import LINE, PAD, Drawing

FILL = {"layer": "#eef3fb", "group": "#fdf3e1", "join": "#ffffff", "io": "#e8f5e9"}
STROKE = {"layer": "#4a6fa5", "group": "#b7791f", "join": "#444444", "io": "#2e7d32"}
FRAME_FILL, FRAME_STROKE = "#fafafa", "#9e9e9e"
EDGE = "#555555"
# scoped to the diagram, so that an SVG inlined in a page (a notebook) styles nothing else
STYLE = """
.cnnspec-diagram text { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 11px; fill: #1a1a1a; }
.cnnspec-diagram .label text { font-size: 10px; fill: #666666; }
.cnnspec-diagram .frame text { fill: #555555; }
.cnnspec-diagram .join text { font-size: 12px; font-weight: bold; }
"""


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _attrs(**attrs) -> str:
    return " ".join(f"{key.replace('_', '-')}={quoteattr(str(value))}" for key, value in attrs.items()
                    if value is not None)


def box_attributes(box) -> dict:
    """What identifies a box to tests and to the HTML view: its summary row's path and id."""
    row = box.row
    return {"class": f"box {box.role}", "data_path": box.path if row is not None else None,
            "data_row": row.id if row is not None else None, "data_kind": box.kind or None}


def to_svg(drawing: Drawing, standalone: bool = True) -> str:
    out = []
    size = _attrs(width=_fmt(drawing.width), height=_fmt(drawing.height),
                  viewBox=f"0 0 {_fmt(drawing.width)} {_fmt(drawing.height)}")
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="cnnspec-diagram" {size} '
            f'data-network={quoteattr(drawing.name)}>')
    out.append(('<?xml version="1.0" encoding="UTF-8"?>\n' if standalone else "") + head)
    out.append(f"<title>{escape(drawing.name)}</title><style>{STYLE}</style>")
    out.append('<rect width="100%" height="100%" fill="#ffffff"/>')
    for frame in drawing.frames:
        out.append(f'<g class="frame" data-scope={quoteattr(frame.scope)}>'
                   f'<rect {_attrs(x=_fmt(frame.x), y=_fmt(frame.y), width=_fmt(frame.w), height=_fmt(frame.h))}'
                   f' rx="6" fill="{FRAME_FILL}" fill-opacity="0.6" stroke="{FRAME_STROKE}" stroke-dasharray="4 3"/>'
                   f'<text x="{_fmt(frame.x + PAD)}" y="{_fmt(frame.y + PAD + LINE - 3)}">{escape(frame.title)}</text></g>')
    out.append(f'<g class="edges" stroke="{EDGE}" stroke-width="1.2" fill="none">')
    for x1, y1, x2, y2 in drawing.segments:
        out.append(f'<line x1="{_fmt(x1)}" y1="{_fmt(y1)}" x2="{_fmt(x2)}" y2="{_fmt(y2)}"/>')
    out.append("</g>")
    for box in drawing.boxes:
        out.append(_box(box))
    out.append('<g class="label">')
    for label in drawing.labels:
        out.append(f'<text x="{_fmt(label.x)}" y="{_fmt(label.y + label.h - 2)}">{escape(label.text)}</text>')
    out.append("</g></svg>")
    return "\n".join(out)


def _box(box) -> str:
    fill, stroke = FILL[box.role], STROKE[box.role]
    parts = [f"<g {_attrs(**box_attributes(box))}>"]
    if box.row is not None:
        parts.append(f"<title>{escape(box.path or '')} ({escape(box.kind)})</title>")
    if box.role == "join":
        r = box.w / 2
        parts.append(f'<circle cx="{_fmt(box.x + r)}" cy="{_fmt(box.y + r)}" r="{_fmt(r)}" fill="{fill}" '
                     f'stroke="{stroke}"/>')
        parts.append(f'<text x="{_fmt(box.x + r)}" y="{_fmt(box.y + r + 4)}" text-anchor="middle">'
                     f'{escape(box.text[0])}</text>')
    else:
        parts.append(f'<rect {_attrs(x=_fmt(box.x), y=_fmt(box.y), width=_fmt(box.w), height=_fmt(box.h))} rx="3" '
                     f'fill="{fill}" stroke="{stroke}"/>')
        for i, line in enumerate(box.text):
            parts.append(f'<text x="{_fmt(box.x + 8)}" y="{_fmt(box.y + 5 + LINE * (i + 1) - 3)}">{escape(line)}</text>')
    parts.append("</g>")
    return "".join(parts)


def to_png(drawing: Drawing, scale: float = 1.0) -> bytes:
    """The same layout drawn with Pillow's ImageDraw (text with its font rendering)."""
    import io

    from PIL import Image, ImageDraw

    font, small = _fonts(round(11 * scale)), _fonts(round(10 * scale))
    image = Image.new("RGB", (max(1, round(drawing.width * scale)), max(1, round(drawing.height * scale))), "white")
    draw = ImageDraw.Draw(image)

    def s(*values):
        return [round(v * scale) for v in values]

    for frame in drawing.frames:
        draw.rounded_rectangle(s(frame.x, frame.y, frame.x + frame.w, frame.y + frame.h), radius=round(6 * scale),
                               fill="#fafafa", outline=FRAME_STROKE)
        draw.text(s(frame.x + PAD, frame.y + PAD), frame.title, fill="#555555", font=font)
    for x1, y1, x2, y2 in drawing.segments:
        draw.line(s(x1, y1, x2, y2), fill=EDGE, width=max(1, round(1.2 * scale)))
    for box in drawing.boxes:
        corners = s(box.x, box.y, box.x + box.w, box.y + box.h)
        if box.role == "join":
            draw.ellipse(corners, fill=FILL["join"], outline=STROKE["join"])
            draw.text(s(box.x + box.w / 2, box.y + box.h / 2), box.text[0], fill="black", font=font, anchor="mm")
            continue
        draw.rounded_rectangle(corners, radius=round(3 * scale), fill=FILL[box.role], outline=STROKE[box.role])
        for i, line in enumerate(box.text):
            draw.text(s(box.x + 8, box.y + 5 + LINE * i + 1), line, fill="#1a1a1a", font=font)
    for label in drawing.labels:
        draw.text(s(label.x, label.y), label.text, fill="#666666", font=small)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _fonts(size: int):
    """DejaVu Sans Mono where the system has it (the widths the layout assumes), else Pillow's
    bundled font at that size."""
    from PIL import ImageFont

    for path in ("DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)

