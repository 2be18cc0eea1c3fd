"""`cnnspec check` of this checkout beside an earlier commit's, in one run.

Run: python bench/bench_before_after.py REF [REF..REF ...] [--runs N]   (writes docs/benchmarks.md)

A bare REF is compared with this checkout; `OLD..NEW` compares two commits, so that one run
measures the changes of several commits each against its own parent while other work lands
between them. Each commit's package is extracted with `git archive` into a temporary folder; each
measurement alternates the two (earlier, then later) so that a change in the machine's load falls
on both alike. Every figure is the median over the runs of a whole `cnnspec check` process, on
ResNet-50 and on the 10,000-layer stack of `bench_check.py`: its wall time, and its CPU time
(user and system), which on a shared machine leaves out the waits for a core.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
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


def once(source: Path, spec: Path) -> tuple[float, float]:
    """The wall time and the CPU time of one `cnnspec check` process."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "cnnspec", "check", str(spec)], check=True, env=env,
                   stdout=subprocess.DEVNULL, cwd=spec.parent)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - start, (done.ru_utime - used.ru_utime) + (done.ru_stime - used.ru_stime)


def compare(before: Path, after: Path, spec: Path, runs: int) -> list[tuple[float, float, float]]:
    """(earlier, later, ratio) of the wall time, then of the CPU time: the medians of each, and of
    each round's later/earlier ratio. A round runs the two in turn, the earlier first in every other
    round, so that the machine's drift falls on both alike and a round compares them at one speed."""
    once(before, spec), once(after, spec)  # warm the parser's table cache of each grammar
    rounds = []
    for index in range(runs):
        if index % 2 == 0:
            earlier = once(before, spec)
            later = once(after, spec)
        else:
            later = once(after, spec)
            earlier = once(before, spec)
        rounds.append((earlier, later))
    return [(statistics.median(earlier[i] for earlier, _ in rounds), statistics.median(later[i] for _, later in rounds),
             statistics.median(later[i] / earlier[i] for earlier, later in rounds)) for i in (0, 1)]


def short(ref: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], check=True,
                          capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("refs", nargs="+", help="earlier commits (against this checkout), or OLD..NEW pairs")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "cnnspec", quiet=1)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        stack = Path(folder) / "gen10000.cnn"
        stack.write_text(generated_spec(10_000))
        for ref in args.refs:
            old, _, new = ref.partition("..")
            before = extract(old, Path(folder) / short(old))
            after = extract(new, Path(folder) / short(new)) if new else ROOT
            pair = f"{short(old)} -> {short(new) if new else short('HEAD')}"
            for name, spec in (("ResNet-50 (`specs/resnet50.cnn`)", ROOT / "specs" / "resnet50.cnn"),
                               ("10,000 layers", stack)):
                (old_wall, new_wall, wall_ratio), (old_cpu, new_cpu, cpu_ratio) = compare(before, after, spec, args.runs)
                rows.append(f"| {pair} | {name} | {old_wall:.3f} s | {new_wall:.3f} s | {wall_ratio:.3f} "
                            f"| {old_cpu:.3f} s | {new_cpu:.3f} s | {cpu_ratio:.3f} |")
                print(rows[-1], flush=True)
    lines = ["## Check time before and after a change", "",
             f"Produced by `python bench/bench_before_after.py {' '.join(args.refs)} --runs {args.runs}`: "
             "`cnnspec check` at each earlier commit beside the later one, in rounds that run the two in turn (the "
             "earlier first in every other round): the medians of a whole process's wall time and of its CPU time, "
             "and the median of the rounds' ratios, later to earlier.", machine(), "",
             "| commits | spec | wall before | wall after | ratio | CPU before | CPU after | ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |", *rows]
    write_section("before-after", lines)


if __name__ == "__main__":
    main()
