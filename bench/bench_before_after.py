"""`cnnspec check` of this checkout beside an earlier commit's, in one run.

Run: python bench/bench_before_after.py REF [--runs N]   (writes docs/benchmarks.md)

The earlier commit's package is extracted with `git archive` into a temporary folder; each
measurement alternates the two (earlier, then this checkout) so that a change in the machine's
load falls on both alike. Every figure is the median wall time of a whole `cnnspec check`
process, on ResNet-50 and on the 10,000-layer stack of `bench_check.py`.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench_check import generated_spec
from results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent


def extract(ref: str, folder: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "cnnspec", "grammars"],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(folder, filter="data")
    compileall.compile_dir(folder / "cnnspec", quiet=1)
    return folder


def once(source: Path, spec: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cnnspec", "check", str(spec)], check=True, env=env,
                   stdout=subprocess.DEVNULL, cwd=spec.parent)
    return time.perf_counter() - start


def compare(before: Path, spec: Path, runs: int) -> tuple[float, float]:
    once(before, spec), once(ROOT, spec)  # warm the parser's table cache of each grammar
    pairs = [(once(before, spec), once(ROOT, spec)) for _ in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ref", help="the earlier commit, as git names it")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "cnnspec", quiet=1)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    base = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.ref], check=True,
                          capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as folder:
        before = extract(args.ref, Path(folder) / "before")
        stack = Path(folder) / "gen10000.cnn"
        stack.write_text(generated_spec(10_000))
        results = [("ResNet-50 (`specs/resnet50.cnn`)", compare(before, ROOT / "specs" / "resnet50.cnn", args.runs)),
                   ("10,000 layers", compare(before, stack, max(3, args.runs // 2)))]
    lines = ["## Check time before and after a change", "",
             f"Produced by `python bench/bench_before_after.py {args.ref}`: `cnnspec check` at `{base}` beside "
             f"`{head}`, alternating, median wall time of a whole process.", machine(), "",
             f"| spec | {base} | {head} | ratio |", "| --- | ---: | ---: | ---: |"]
    for name, (old, new) in results:
        lines.append(f"| {name} | {old:.3f} s | {new:.3f} s | {new / old:.3f} |")
        print(f"{name}: {old:.3f} s -> {new:.3f} s ({new / old:.3f})")
    write_section("before-after", lines)


if __name__ == "__main__":
    main()
