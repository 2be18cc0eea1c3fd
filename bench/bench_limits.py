"""How fast `cnnspec check` refuses a spec beyond its limits, and checks one at them.

Run: python bench/bench_limits.py [--runs N]   (writes docs/benchmarks.md)

Every figure is a whole process (interpreter start, imports, work): the median wall time of N
runs and the largest peak resident memory (the kernel's VmHWM, read as the process exits).
"""

from __future__ import annotations

import argparse
import compileall
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent

#: the CLI, reporting its peak resident memory when it exits
CLI_WITH_PEAK = """
import atexit, sys
def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"peak-rss-kb {kb}\\n")
atexit.register(peak)
sys.argv[0] = "cnnspec"
from cnnspec.console import console_entry
console_entry()
"""


def check_with_peak(path: Path, timeout: float = 600) -> tuple[int, str, float]:
    """`cnnspec check path` in a child process: its exit status, its output and its peak resident
    memory in MB (tests/test_limits.py uses it too)."""
    out = subprocess.run([sys.executable, "-c", CLI_WITH_PEAK, "check", str(path)], capture_output=True, text=True,
                         timeout=timeout)
    peak = re.search(r"^peak-rss-kb (\d+)$", out.stderr, re.M)
    assert peak, out.stderr[-2000:]
    return out.returncode, out.stdout + out.stderr, int(peak.group(1)) / 1024


def doubling(levels: int) -> str:
    """`b{k}` calls `b{k-1}` twice: 2**levels layers, written in `levels + 1` blocks."""
    lines = ["input x: 1x8x8", "block b0 { relu }"]
    lines += [f"block b{i} {{ b{i - 1}; b{i - 1} }}" for i in range(1, levels + 1)]
    return "\n".join(lines + [f"b{levels}"]) + "\n"


CASES = [
    ("a block calling the one before twice, 40 levels (2^40 layers)", doubling(40)),
    ("the same, 18 levels (262,144 layers)", doubling(18)),
    ("nested repeats reaching 10^9 layers", "input x: 1x8x8\n{ { { relu * 1000 } * 1000 } * 1000 }\n"),
    ("a repeat of 199,600 layers", "input x: 1x8x8\n{ relu * 998 } * 200\n"),
    ("20,001 layers, one a line", "input x: 1x8x8\n" + "relu\n" * 20_001),
    ("300,000 statements in a block", "input x: 1x8x8\nblock b {\n" + "relu\n" * 300_000 + "}\nb\n"),
    ("100,000 chained `not`", "input x: 1x8x8\nwhen (" + "not " * 100_000 + "true) { relu }\n"),
    ("a sum of 100,000 terms", "input x: 1x8x8\nconv 8 1x1 stride=" + "+".join(["1"] * 100_000) + "\n"),
    ("accepted: 2^14 layers by doubling blocks", doubling(14)),
    ("accepted: 20,000 layers by repeats", "input x: 1x8x8\n{ { conv 4 1x1; relu } * 50 } * 200\n"),
    ("accepted: 20,000 layers, one a line", "input x: 16x32x32\n"
     + "".join("conv 16 3x3 pad=1\n" if i % 2 == 0 else "relu\n" for i in range(20_000))),
]


def measured(path: Path, runs: int) -> tuple[str, float, float]:
    """The outcome (the first code, or ok), the median wall time and the largest peak memory in MB."""
    times, peaks, outcome = [], [], "?"
    for _ in range(runs):
        start = time.perf_counter()
        status, output, peak = check_with_peak(path)
        times.append(time.perf_counter() - start)
        peaks.append(peak)
        code = re.search(r"error\[(E\d+)\]", output)
        outcome = code.group(1) if code else "ok" if status == 0 else f"exit {status}"
    return outcome, statistics.median(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "cnnspec", quiet=1)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for index, (what, text) in enumerate(CASES):
            path = Path(folder) / f"case{index}.cnn"
            path.write_text(text)
            rows.append((what, *measured(path, args.runs)))
    lines = [
        "## Refusals at the limits",
        "",
        "Produced by `python bench/bench_limits.py`: `cnnspec check` with the default limits, whole",
        "processes, the median wall time and the largest peak resident memory of the runs.",
        machine(),
        "",
        "| spec | outcome | wall time | peak memory |",
        "| --- | --- | ---: | ---: |",
        *(f"| {what} | {outcome} | {seconds:.2f} s | {peak:.0f} MB |" for what, outcome, seconds, peak in rows),
        "",
        "Target: a refusal within about 2 s and 500 MB; a spec at the layer limit in a few seconds.",
    ]
    write_section("limits", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
