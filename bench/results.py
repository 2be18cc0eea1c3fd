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


#: the vector extensions that decide how fast convolutions and int8 kernels run
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")


def processor() -> str:
    """The CPU's model name and its vector extensions, as Linux reports them ('' elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    fields = dict(line.split(":", 1) for line in info.splitlines()[:40] if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    have = [flag for flag in VECTOR_FLAGS if flag in flags]
    return f"{fields.get('model name', 'unknown CPU')} ({', '.join(have) or 'no AVX2'})"


def machine() -> str:
    cpu = processor()
    return (f"Machine: {platform.machine()}{', ' + cpu if cpu else ''}, {platform.python_implementation()} "
            f"{platform.python_version()}, {os.cpu_count()} cores.")


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
