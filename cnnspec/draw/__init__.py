"""Pictures of a network: the diagram's layout and its SVG, PNG and DOT forms, the HTML view."""

from __future__ import annotations

from cnnspec.draw.geometry import Drawing, layout

FORMATS = ("svg", "png", "dot")


def render(network, format: str = "svg", depth: int | None = None, direction: str = "down",
           scope: str | None = None) -> bytes:
    """The diagram (of the network, or of one block call or group) as the bytes of an SVG, PNG
    (needs Pillow) or DOT file; an unknown scope is a ValueError naming the closest."""
    if format == "dot":
        from cnnspec.draw.dot import to_dot

        return to_dot(network, depth, scope).encode()
    drawing = layout(network, depth, direction, scope)
    if format == "png":
        from cnnspec.draw.svg import to_png

        return to_png(drawing)
    if format == "svg":
        from cnnspec.draw.svg import to_svg

        return to_svg(drawing).encode()
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")


def format_for(path: str, given: str | None) -> str:
    """The format asked for, else the output file's extension, else SVG."""
    if given:
        return given
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return suffix if suffix in FORMATS else "svg"


__all__ = ["FORMATS", "Drawing", "format_for", "layout", "render"]
