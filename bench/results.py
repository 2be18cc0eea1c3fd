"""docs/benchmarks.md holds one section per benchmark script; each run rewrites its own."""

from __future__ import annotations

import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

HEADER = """# Benchmarks

Each section is produced by one script in `bench/` and rewritten when that script runs; the
figures of a section come from one run, so its ratios compare like with like.
"""


def machine() -> str:
    return (f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores.")


def write_section(name: str, lines: list[str]) -> None:
    """Replace the section between `<!-- name -->` markers, or append it."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    if not text.startswith("# Benchmarks"):
        text = HEADER
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = "\n".join([start, *lines, end])
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
