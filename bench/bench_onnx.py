"""ONNX export and inference on ResNet-50: cnnspec against torch.onnx.export and PyTorch eager.

Run: python bench/bench_onnx.py [--runs N] [--iterations M]   (writes its section of docs/benchmarks.md)

All three run the same network with the same weights: cnnspec's spec, and the plain-torch
module that `cnnspec emit torch` writes for it (it imports only torch), loaded with the same
safetensors file.

- Export: wall time of a whole process, median of N, and its peak resident memory (the
  largest of the N, from `wait4`), against the weights' bytes: `cnnspec export` (build, full
  onnx check, write; also with `--dynamic hw`) against a process that builds the torch module, loads the weights and runs
  `torch.onnx.export`, both its default (torch.export-based, which needs onnxscript: the
  `bench` extra) and the TorchScript exporter (`dynamo=False`). The latency comparison uses
  the TorchScript exporter's model.
- Latency: onnxruntime with 2 threads and full graph optimisation, or PyTorch eager with 2
  threads under `inference_mode`; each in its own process, warmed up, median of M runs at
  batch 1 and 8.
- Throughput: 2 x MACs x batch / latency, against a single-precision matrix multiply
  through onnxruntime's MatMul (the kernels its convolutions use), in its own process with
  2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "resnet50.cnn"

PREPARE = """
import sys, cnnspec
from safetensors.numpy import save_file
from cnnspec.backends.weights import random_weights
net = cnnspec.load(sys.argv[1])
save_file(random_weights(net, seed=0, statistics=True), sys.argv[2])
open(sys.argv[3], "w").write(net.to_torch_source())
print(net.macs)
"""

TORCH_EXPORT = """
import sys, types, torch
from safetensors.torch import load_file
source, weights, output, dynamo, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "dynamo", sys.argv[5]
module = types.ModuleType("plain")
exec(compile(open(source).read(), source, "exec"), module.__dict__)
model = getattr(module, name)().eval()
model.load_state_dict(load_file(weights), strict=True)
if dynamo:
    batch = torch.export.Dim("N", min=1)
    torch.onnx.export(model, (torch.randn(2, 3, 224, 224),), output, dynamo=True, input_names=["x"],
                      output_names=["output"], dynamic_shapes={"x": {0: batch}})
else:
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), output, dynamo=False, input_names=["x"],
                      output_names=["output"], dynamic_axes={"x": {0: "N"}, "output": {0: "N"}})
"""

LATENCY = """
import json, statistics, sys, time
import numpy as np
kind, path, batch, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
if kind == "eager":
    import types, torch
    from safetensors.torch import load_file
    torch.set_num_threads(2)
    module = types.ModuleType("plain")
    exec(compile(open(path).read(), path, "exec"), module.__dict__)
    model = module.Resnet50().eval()
    model.load_state_dict(load_file(sys.argv[5]), strict=True)
    t = torch.from_numpy(x)
    def step():
        with torch.inference_mode():
            return model(t).numpy()
else:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    def step():
        return session.run(None, {name: x})[0]
for _ in range(3):
    out = step()
times = []
for _ in range(iterations):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(json.dumps({"median": statistics.median(times), "checksum": float(np.abs(out).sum())}))
"""

SGEMM = """
import json, time
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
n = 2048
graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
                          [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
feed = {k: np.random.default_rng(0).standard_normal((n, n)).astype(np.float32) for k in "ab"}
for _ in range(3):
    session.run(None, feed)
best = 0.0
for _ in range(10):
    start = time.perf_counter()
    session.run(None, feed)
    best = max(best, 2 * n**3 / (time.perf_counter() - start))
print(json.dumps({"gflops": best / 1e9}))
"""


def timed(command: list[str], runs: int) -> tuple[float, float]:
    """The median wall time of `runs` processes and the largest peak resident memory (MiB)."""
    times, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        times.append(time.perf_counter() - start)
        if status:
            raise subprocess.CalledProcessError(status, command)
        peaks.append(usage.ru_maxrss / 1024)  # kilobytes on Linux
    return statistics.median(times), max(peaks)


def python(script: str, *args) -> str:
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], check=True, capture_output=True,
                          text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="processes per export timing")
    parser.add_argument("--iterations", type=int, default=30, help="timed inferences per latency process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        weights, source = folder / "weights.safetensors", folder / "plain_resnet50.py"
        ours, theirs = folder / "cnnspec.onnx", folder / "torch.onnx"
        macs = int(python(PREPARE, SPEC, weights, source))
        export_ours = timed([sys.executable, "-m", "cnnspec", "export", str(SPEC), "-o", str(ours),
                             "--weights", str(weights)], args.runs)
        export_dynamic = timed([sys.executable, "-m", "cnnspec", "export", str(SPEC), "-o", str(folder / "hw.onnx"),
                                "--weights", str(weights), "--dynamic", "hw"], args.runs)
        export_theirs = timed([sys.executable, "-c", TORCH_EXPORT, str(source), str(weights), str(theirs),
                               "torchscript", "Resnet50"], args.runs)
        dynamo_path = folder / "dynamo.onnx"
        export_dynamo = timed([sys.executable, "-c", TORCH_EXPORT, str(source), str(weights), str(dynamo_path),
                               "dynamo", "Resnet50"], args.runs)
        latency = {}
        for batch in (1, 8):
            iterations = args.iterations if batch == 1 else max(5, args.iterations // 3)
            for kind, path in (("cnnspec", ours), ("torch.onnx", theirs), ("eager", source)):
                result = json.loads(python(LATENCY, kind, path, batch, iterations, weights))
                latency[kind, batch] = result
        peak = json.loads(python(SGEMM))["gflops"]
        models = (("cnnspec", ours), ("torch.onnx", theirs), ("dynamo", dynamo_path))
        sizes = {name: sum(p.stat().st_size for p in folder.glob(path.name + "*")) for name, path in models}
        nodes = {}
        import onnx

        for name, path in models:
            nodes[name] = len(onnx.load(str(path), load_external_data=False).graph.node)

    lines = [
        "## ONNX export and inference, ResNet-50",
        "",
        "Produced by `python bench/bench_onnx.py`: the same weights in all three, the torch model being",
        "the plain module `cnnspec emit torch` writes. Export is the wall time of a whole process",
        f"(median of {args.runs}); latency is the median of warmed-up runs, each runtime in its own process",
        "with 2 threads (onnxruntime with full graph optimisation).",
        machine(),
        "",
        "| export | wall time | ratio | peak memory | of the weights | nodes | file |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    weight_mib = sizes["cnnspec"] / 2**20
    for label, (seconds, peak_mib), name in (
            ("`cnnspec export` (build, full check, write)", export_ours, "cnnspec"),
            ("`cnnspec export --dynamic hw` (and the size analysis)", export_dynamic, "cnnspec"),
            ("`torch.onnx.export`, default exporter (import torch, build, load weights, export, write)",
             export_dynamo, "dynamo"),
            ("`torch.onnx.export(dynamo=False)`, TorchScript exporter", export_theirs, "torch.onnx")):
        lines.append(f"| {label} | {seconds:.2f} s | {seconds / export_ours[0]:.2f} | {peak_mib:.0f} MiB | "
                     f"{peak_mib / weight_mib:.1f}x | {nodes[name]} | {sizes[name] / 2**20:.1f} MiB |")
    lines += [
        "",
        "| batch | runtime | latency | ratio to cnnspec's model | GFLOP/s | of sgemm peak |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for batch in (1, 8):
        base = latency["cnnspec", batch]["median"]
        for kind, label in (("cnnspec", "onnxruntime, cnnspec's model"), ("torch.onnx", "onnxruntime, torch.onnx.export's model"),
                            ("eager", "PyTorch eager")):
            seconds = latency[kind, batch]["median"]
            gflops = 2 * macs * batch / seconds / 1e9
            lines.append(f"| {batch} | {label} | {seconds * 1000:.1f} ms | {seconds / base:.2f} | {gflops:.1f} | "
                         f"{gflops / peak:.0%} |")
    lines += [
        "",
        f"sgemm peak (onnxruntime MatMul 2048x2048, 2 threads, best of 10): {peak:.1f} GFLOP/s. "
        f"ResNet-50: {macs:,} MACs per image.",
        "A share above 100% means onnxruntime's convolutions (its NCHWc kernels) outrun its own MatMul",
        "on this CPU: the sgemm figure is a reference point, not a ceiling.",
        "",
        "Targets: export at least 5x faster than `torch.onnx.export`; latency no worse than 1.05x the",
        "exporter's model, and better than PyTorch eager.",
    ]
    write_section("onnx", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
