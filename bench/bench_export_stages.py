"""Where `cnnspec export` of ResNet-50 spends its time and memory, stage by stage, in one process.

Run: python bench/bench_export_stages.py   (writes its section of docs/benchmarks.md)

The stages are those of `cnnspec.backends.onnx_io.export_model`, run one after another as it runs
them: the imports, the check of the spec, `to_onnx` (the seeded random weights, drawn as the
lowering takes them, with batch norms folded, the shapes declared), the file written tensor by
tensor, and onnx's checks (`onnx_io.check_written`: each weight on its own, then the full checker
on the graph with the weights referenced where they lie in the file). For each: wall time, and the resident memory after it and at its peak so far
(VmRSS, VmHWM), against the weights' bytes. The load average is printed: on a shared machine the
times move with it, the memory does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent

STAGES = """
import json, sys, time
marks, last = [], [time.perf_counter()]
def mark(stage):
    status = open("/proc/self/status").read()
    rss, peak = (int(status.split(key)[1].split()[0]) / 1024 for key in ("VmRSS:", "VmHWM:"))
    now = time.perf_counter()
    marks.append([stage, now - last[0], rss, peak])
    last[0] = now
import numpy, onnx
mark("import numpy and onnx")
from cnnspec.backends.onnx_io import check_written, large_buffers_returned
from pathlib import Path
large_buffers_returned()
import cnnspec
network = cnnspec.load(sys.argv[1])
mark("import cnnspec, check the spec")
from cnnspec.backends.onnx import to_onnx
model = to_onnx(network)
mark("to_onnx: random weights, lowering, shapes")
from cnnspec.backends.onnx_write import write_model
with open(sys.argv[2], "wb") as handle:
    placements = write_model(model, handle)
mark("write, tensor by tensor")
check_written(model, Path(sys.argv[2]), placements)
mark("onnx's checks: each weight, then the graph in full")
print(json.dumps({"marks": marks, "weights": 4 * (network.params + network.buffers) / 2**20}))
"""


def main() -> None:
    import json

    with tempfile.TemporaryDirectory() as folder:
        load_before = os.getloadavg()[0]
        result = json.loads(subprocess.run([sys.executable, "-c", STAGES, str(ROOT / "specs" / "resnet50.cnn"),
                                            str(Path(folder) / "resnet50.onnx")], check=True, capture_output=True,
                                           text=True).stdout)
        load_after = os.getloadavg()[0]
    weights = result["weights"]
    total = sum(m[1] for m in result["marks"])
    lines = [
        "## Export of ResNet-50, stage by stage",
        "",
        "Produced by `python bench/bench_export_stages.py`: the stages of `cnnspec export` in one process,",
        "each with its wall time and the resident memory after it and at the peak so far.",
        f"{machine()} Load average {load_before:.1f} before, {load_after:.1f} after.",
        "",
        "| stage | time | share | resident after | peak so far | peak / weights |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stage, seconds, rss, peak in result["marks"]:
        lines.append(f"| {stage} | {seconds:.2f} s | {seconds / total:.0%} | {rss:.0f} MiB | {peak:.0f} MiB | "
                     f"{peak / weights:.1f}x |")
    lines += [
        "",
        f"Weights and buffers: {weights:.1f} MiB in fp32. The random weights are drawn as the lowering",
        "takes them and each is freed once it is in its initializer; the initializers are made in the",
        "model's graph (make_graph and make_model would copy them twice); the file is written field by",
        "field with each initializer serialised on its own (`cnnspec.backends.onnx_write`); onnx's checker",
        "reads the graph with the weights referenced in the file, not the whole file (which it holds",
        "twice while it parses it: 2x the weights on its own); and glibc returns freed weight buffers",
        "(`onnx_io.large_buffers_returned`). The peak was 650 MiB before these changes, 280 MiB with",
        "onnx's check of the whole file, on the same machine.",
    ]
    write_section("export-stages", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
