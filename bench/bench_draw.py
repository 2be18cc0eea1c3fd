"""`cnnspec draw` on ResNet-50 at full depth, and on the zoo's largest drawings.

Run: python bench/bench_draw.py [--runs N]

Figures are medians of N runs in one process after a first, warm-up run (imports and the
checker's validators built): the layout, then the SVG text, then both as `draw` does them, and
the whole `cnnspec draw` process for ResNet-50 beside `cnnspec check`'s. Target: ResNet-50 in full under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnnspec  # noqa: E402
from cnnspec.draw.geometry import layout  # noqa: E402
from cnnspec.draw.svg import to_svg  # noqa: E402


def median_time(work, runs: int) -> float:
    work()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def process_time(runs: int, *args: str) -> float:
    """The median wall time of a whole `cnnspec ARGS...` process, after one warm-up run."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "cnnspec", *(a.replace("{out}", folder) for a in args)]
        subprocess.run(command, check=True, capture_output=True)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print("| network | boxes | layout | SVG | layout + SVG | SVG size |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("resnet50", "densenet121", "inception_v4", "inception_resnet_v2"):
        network = cnnspec.load(ROOT / "specs" / f"{name}.cnn")
        drawing = layout(network)
        t_layout = median_time(lambda network=network: layout(network), runs)
        t_svg = median_time(lambda drawing=drawing: to_svg(drawing), runs)
        t_both = median_time(lambda network=network: to_svg(layout(network)), runs)
        size = len(to_svg(drawing).encode())
        print(f"| {name} | {len(drawing.boxes)} | {t_layout * 1000:.1f} ms | {t_svg * 1000:.1f} ms "
              f"| {t_both * 1000:.1f} ms | {size / 1024:.0f} kB |")
    spec = str(ROOT / "specs" / "resnet50.cnn")
    drawn, checked = process_time(runs, "draw", spec, "-o", "{out}/net.svg"), process_time(runs, "check", spec)
    print(f"\nWhole processes: `cnnspec draw specs/resnet50.cnn -o net.svg` {drawn:.3f} s, "
          f"`cnnspec check specs/resnet50.cnn` {checked:.3f} s: drawing adds {drawn - checked:.3f} s")


if __name__ == "__main__":
    main()
