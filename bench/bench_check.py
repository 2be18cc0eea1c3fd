"""`cnnspec check` against torchinfo, and check time against network size.

Run: python bench/bench_check.py [--runs N]   (writes docs/benchmarks.md)

Every figure is wall time of a whole process (interpreter start, imports, work), the median
of N runs, measured in one run of this script so the ratios compare like with like. The
package is byte-compiled first, as `pip install` leaves it, so no run pays for compiling
cnnspec's sources (an editable install under PYTHONDONTWRITEBYTECODE=1 would, every time).
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent

TORCHINFO = f"""
import sys; sys.path.insert(0, {str(ROOT / 'bench')!r})
import torchinfo
from plain_resnet50 import resnet50
stats = torchinfo.summary(resnet50(), input_size=(1, 3, 224, 224), verbose=0)
assert stats.total_params == 25_557_032, stats.total_params
"""


#: what cnnspec cannot start without: the IR's Pydantic, the Lark parser, the CLI's click
DEPENDENCIES = "from pydantic import BaseModel; from lark import Lark; import click"

BREAKDOWN = f"""
import time
start = time.perf_counter()
{DEPENDENCIES}
dependencies = time.perf_counter()
import cnnspec, cnnspec.diagnostics
imported = time.perf_counter()
cnnspec.load({str(ROOT / 'specs' / 'resnet50.cnn')!r})
first = time.perf_counter()
cnnspec.load({str(ROOT / 'specs' / 'resnet50.cnn')!r})
second = time.perf_counter()
print(dependencies - start, imported - dependencies, first - imported, second - first)
"""


def breakdown(runs: int) -> tuple[float, ...]:
    """(dependencies' imports, cnnspec's own imports, first load, second load) of ResNet-50 in
    one process, medians: the second load finds the validators and the parser built."""
    samples = [subprocess.run([sys.executable, "-c", BREAKDOWN], check=True, capture_output=True, text=True)
               .stdout.split() for _ in range(runs)]
    return tuple(statistics.median(float(s[i]) for s in samples) for i in range(4))


def run_once(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process. CPU time (user and system, of the process and
    its children) is what the process itself costs: on a machine shared with other work the wall
    time also holds the time spent waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def timed_together(commands: list[list[str]], runs: int) -> list[tuple[float, float]]:
    """(wall, CPU) medians of each command over `runs` rounds, each round running every command
    once in turn: this machine's speed drifts by half within minutes, and commands measured one
    after another would each meet a different machine, the ratios between them with it."""
    samples: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(runs):
        for command, taken in zip(commands, samples):
            taken.append(run_once(command))
    return [(statistics.median(w for w, _ in taken), statistics.median(c for _, c in taken)) for taken in samples]


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"Load average during the run: {one:.1f} (one minute), {five:.1f} (five) on {os.cpu_count()} cores."


def generated_spec(layers: int) -> str:
    """A plain stack of `layers` layers: alternating 3x3 convs and ReLUs on a 16x32x32 map."""
    lines = ["network generated", "input x: 16x32x32"]
    lines += ["conv 16 3x3 pad=1" if i % 2 == 0 else "relu" for i in range(layers)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cnnspec = [sys.executable, "-m", "cnnspec", "check"]
    compileall.compile_dir(ROOT / "cnnspec", quiet=1)
    subprocess.run(cnnspec + [str(ROOT / "specs" / "resnet50.cnn")], check=True, stdout=subprocess.DEVNULL)  # warm caches
    resnet50 = cnnspec + [str(ROOT / "specs" / "resnet50.cnn")]
    baseline, floor, ours = timed_together([[sys.executable, "-c", "pass"], [sys.executable, "-c", DEPENDENCIES],
                                            resnet50], args.runs)
    # torchinfo's ratio is to cnnspec's time in the same rounds
    theirs, ours_beside = timed_together([[sys.executable, "-c", TORCHINFO], resnet50], max(3, args.runs // 2))
    with tempfile.TemporaryDirectory() as folder:
        sizes = (100, 1_000, 10_000, 20_000)
        paths = [Path(folder) / f"gen{layers}.cnn" for layers in sizes]
        for layers, path in zip(sizes, paths):
            path.write_text(generated_spec(layers))
        # the floor runs in the same rounds, so each size is also a multiple of it, comparable across machines
        (floor_beside, _), *checks = timed_together([[sys.executable, "-c", DEPENDENCIES]]
                                                    + [cnnspec + [str(path)] for path in paths], max(3, args.runs // 2))
        scaling = list(zip(sizes, checks))
    (ours, ours_cpu), (floor, floor_cpu), (baseline, baseline_cpu) = ours, floor, baseline
    (theirs, theirs_cpu), (beside, beside_cpu) = theirs, ours_beside
    lines = [
        "## Checking ResNet-50",
        "",
        "Produced by `python bench/bench_check.py`; every figure is the median of whole processes",
        "(interpreter start, imports, work): wall time, and CPU time (user and system), which on a shared",
        "machine is what the process itself costs while the wall time also holds its waits for a core.",
        machine(),
        load_average(),
        "",
        "| tool | what it does | wall time | ratio | CPU time | ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        f"| `cnnspec check specs/resnet50.cnn` | parse, expand, infer shapes, count params and MACs, check contracts | {ours:.3f} s | 1.00 | {ours_cpu:.3f} s | 1.00 |",
        f"| torchinfo `summary` of the plain-torch ResNet-50 | import torch, build the model, forward pass with hooks | {theirs:.3f} s | {theirs / beside:.2f} | {theirs_cpu:.3f} s | {theirs_cpu / beside_cpu:.2f} |",
        f"| importing pydantic's `BaseModel`, Lark and click | the floor under any cnnspec command | {floor:.3f} s | {floor / ours:.2f} | {floor_cpu:.3f} s | {floor_cpu / ours_cpu:.2f} |",
        f"| `python -c pass` | interpreter start alone | {baseline:.3f} s | {baseline / ours:.2f} | {baseline_cpu:.3f} s | {baseline_cpu / ours_cpu:.2f} |",
        "",
        f"`cnnspec check` takes {ours / floor:.2f}x the floor's wall time and {ours_cpu / floor_cpu:.2f}x its CPU time;",
        f"torchinfo takes {theirs / beside:.1f}x cnnspec's wall time ({theirs_cpu / beside_cpu:.1f}x its CPU time), measured in",
        f"rounds of its own, where cnnspec took {beside:.3f} s. Each figure is the median over rounds that run every",
        "command of its group once in turn, so that the machine's drift falls on all of them alike.",
        "",
        "## Check time against network size",
        "",
        f"The floor, run in the same rounds as these checks, took {floor_beside:.3f} s.",
        "",
        "| layers | wall time | the floor's | per 1,000 layers above the 100-layer run | CPU time | per 1,000 layers |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base_layers, (base_time, base_cpu) = scaling[0]
    for layers, (seconds, cpu) in scaling:
        slope = "-" if layers == base_layers else f"{(seconds - base_time) / (layers - base_layers) * 1000:.3f} s"
        cpu_slope = "-" if layers == base_layers else f"{(cpu - base_cpu) / (layers - base_layers) * 1000:.3f} s"
        lines.append(f"| {layers:,} | {seconds:.3f} s | {seconds / floor_beside:.1f}x | {slope} | {cpu:.3f} s | {cpu_slope} |")
    dependencies, own, first, second = breakdown(args.runs)
    lines += ["", "Targets: ResNet-50 within 1.4x of the floor; 10,000 layers under 1 s, growing linearly (set where",
              "the floor took 0.103 s: 1 s was 9.7 times the floor there).", "",
              "Where ResNet-50's time goes, in one process (medians): importing the dependencies",
              f"{dependencies:.3f} s (Pydantic's `BaseModel`, Lark, click); importing `cnnspec` {own:.3f} s (the",
              f"IR's model classes and the diagnostics); the first `load` {first:.3f} s, of which about",
              f"{first - second:.3f} s is done once per process (importing the checker, the layer registry's",
              "model classes and the lints, loading the parse tables, Pydantic building the validators of the",
              "kinds met): a second `load` in the same process takes",
              f"{second:.3f} s. The rest is the interpreter's start and the command's output."]
    write_section("check", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
