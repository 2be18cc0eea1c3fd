"""Deployment exports side by side: float32, float16 and int8 models of ResNet-50 and MobileNetV2,
and the accuracy of each precision on a network trained here.

Run: python bench/bench_deploy.py [--runs N] [--iterations M]   (writes its section of docs/benchmarks.md)

Needs the `bench` extra (onnxscript for torch's default exporter, scikit-learn for the digits).

- Latency: onnxruntime with 2 threads and full graph optimisation, each model in its own process,
  warmed up, median of M runs at batch 1 and 8 (fewer at 8). float16 is `--fp16 --keep-io-types`
  (float32 in and out, as a caller feeds it); int8 is `--int8` (QDQ, per-channel int8 weights,
  uint8 activations), calibrated on 16 smooth random fields: ranges, not accuracy, matter to speed.
- Export: wall time of a whole process (median of N) and its peak resident memory (the largest
  of the N, from the kernel's count for the child), for `cnnspec export` in each precision
  against a process that builds the plain-torch module (`cnnspec emit torch`), loads the same
  weights and runs `torch.onnx.export` with its default (torch.export-based) exporter and with
  the TorchScript one (`dynamo=False`), both float32.
- Accuracy: LeNet-5 of the zoo, built by `to_torch()`, trained with Adam on scikit-learn's
  bundled handwritten digits (1,797 8x8 images shipped inside the package, upsampled bilinearly to
  28x28, three quarters for training, stratified), then exported in each precision with the
  trained weights (int8 calibrated on the training split) and run by onnxruntime on the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_onnx import TORCH_EXPORT
from results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
NETWORKS = {"ResNet-50": "resnet50", "MobileNetV2": "mobilenet_v2"}
PRECISIONS = {"float32": [], "float16": ["--fp16", "--keep-io-types"], "int8": ["--int8", "--calibrate"]}

PREPARE = """
import sys, numpy as np, torch, cnnspec
from safetensors.numpy import save_file
from cnnspec.backends.weights import random_weights
net = cnnspec.load(sys.argv[1])
save_file(random_weights(net, seed=0, statistics=True), sys.argv[2])
open(sys.argv[3], "w").write(net.to_torch_source())
coarse = torch.from_numpy(np.random.default_rng(1).standard_normal((16, 3, 7, 7)).astype(np.float32))
fields = torch.nn.functional.interpolate(coarse, size=net.input_shape[1:], mode="bilinear").numpy()
np.savez(sys.argv[4], samples=fields)
"""


#: a process that runs a command and reports its wall time and the child's peak resident memory
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

LATENCY = """
import json, statistics, sys, time
import numpy as np
import onnxruntime as ort
path, batch, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = 2
options.inter_op_num_threads = 1
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
for _ in range(3):
    session.run(None, {name: x})
times = []
for _ in range(iterations):
    start = time.perf_counter()
    session.run(None, {name: x})
    times.append(time.perf_counter() - start)
print(json.dumps({"median": statistics.median(times)}))
"""


def python(script: str, *args) -> str:
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], check=True, capture_output=True,
                          text=True).stdout


def measured(command: list, runs: int) -> dict:
    """Median wall time and largest peak memory of `runs` whole processes."""
    results = [json.loads(python(MEASURE, *command)) for _ in range(runs)]
    return {"seconds": statistics.median(r["seconds"] for r in results),
            "peak_mib": max(r["peak_kib"] for r in results) / 1024}


def file_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def deployment_figures(folder: Path, runs: int, iterations: int) -> dict:
    figures = {}
    for title, name in NETWORKS.items():
        spec = SPECS / f"{name}.cnn"
        weights, source, calibration = folder / f"{name}.safetensors", folder / f"{name}.py", folder / f"{name}.npz"
        python(PREPARE, spec, weights, source, calibration)
        class_name = re.findall(r"^class (\w+)", source.read_text(), re.M)[-1]
        for precision, flags in PRECISIONS.items():
            path = folder / f"{name}-{precision}.onnx"
            flags = [*flags, str(calibration)] if precision == "int8" else flags
            command = [sys.executable, "-m", "cnnspec", "export", str(spec), "--weights", str(weights), "-o",
                       str(path), *flags]
            figures[title, precision] = {"export": measured(command, runs), "size": file_size(path)}
            for batch in (1, 8):
                count = iterations if batch == 1 else max(5, iterations // 3)
                figures[title, precision][batch] = json.loads(python(LATENCY, path, batch, count))["median"]
        for exporter in ("dynamo", "torchscript"):
            path = folder / f"{name}-{exporter}.onnx"
            command = [sys.executable, "-c", TORCH_EXPORT, str(source), str(weights), str(path), exporter, class_name]
            figures[title, exporter] = {"export": measured(command, runs), "size": file_size(path)}
        figures[title, "weights"] = weights.stat().st_size
    return figures


def digits_accuracy(folder: Path) -> dict:
    """Train LeNet-5 on the digits, export it in each precision, and measure test accuracy."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import cnnspec

    # a network this small trains fastest on one thread (two spin against each other on a busy machine)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    digits = load_digits()
    network = cnnspec.load(SPECS / "lenet5.cnn")
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    images = torch.nn.functional.interpolate(images, size=network.input_shape[1:], mode="bilinear").numpy()
    x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25, random_state=0,
                                                        stratify=digits.target)
    model = network.to_torch(seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    inputs, targets = torch.from_numpy(x_train), torch.from_numpy(y_train)
    epochs = 40
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(inputs))
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch]).backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        eager = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    weights, calibration = folder / "lenet5.npz", folder / "digits-train.npz"
    np.savez(weights, **{k: v.numpy() for k, v in model.state_dict().items()})
    np.savez(calibration, train=x_train)
    accuracy = {"PyTorch eager (float32)": eager}
    predictions = {}
    for precision, flags in PRECISIONS.items():
        path = folder / f"lenet5-{precision}.onnx"
        flags = [*flags, str(calibration)] if precision == "int8" else flags
        subprocess.run([sys.executable, "-m", "cnnspec", "export", str(SPECS / "lenet5.cnn"), "--weights", str(weights),
                        "-o", str(path), *flags], check=True, capture_output=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        predictions[precision] = session.run(None, {session.get_inputs()[0].name: x_test})[0].argmax(1)
        accuracy[precision] = float((predictions[precision] == y_test).mean())
    return {"accuracy": accuracy, "train": len(x_train), "test": len(x_test), "epochs": epochs,
            "int8_agreement": float((predictions["int8"] == predictions["float32"]).mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2, help="processes per export timing")
    parser.add_argument("--iterations", type=int, default=15, help="timed inferences per latency process at batch 1")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        figures = deployment_figures(Path(folder), args.runs, args.iterations)
        digits = digits_accuracy(Path(folder))
    lines = [
        "## Deployment: float32, float16 and int8 models",
        "",
        "Produced by `python bench/bench_deploy.py`: the same random weights (batch-norm statistics",
        "too) in every model of a network. Latency: onnxruntime, 2 threads, full graph optimisation,",
        f"each model in its own process, median of {args.iterations} warmed-up runs at batch 1",
        f"({max(5, args.iterations // 3)} at batch 8). float16 is `--fp16 --keep-io-types`; int8 is `--int8`",
        "(QDQ, per-channel int8 weights, uint8 activations) calibrated on 16 smooth random fields.",
        f"Export: whole process, median wall time of {args.runs}, largest peak resident memory.",
        f"{machine()} Load average (1 minute) at the start: {load:.1f}: the cores are shared, so the",
        "ratios, measured side by side, say more than the absolute times.",
        "",
        "| network | model | batch 1 | batch 8 | ratio to float32 (1 / 8) | file |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for title in NETWORKS:
        base = figures[title, "float32"]
        for precision in PRECISIONS:
            f = figures[title, precision]
            lines.append(f"| {title} | {precision} | {f[1] * 1000:.1f} ms | {f[8] * 1000:.1f} ms | "
                         f"{base[1] / f[1]:.2f}x / {base[8] / f[8]:.2f}x faster | {f['size'] / 2**20:.1f} MiB |")
    lines += [
        "",
        "| network | export | wall time | ratio | peak memory | of the float32 weights | file |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = {"float32": "`cnnspec export`", "float16": "`cnnspec export --fp16 --keep-io-types`",
              "int8": "`cnnspec export --int8 --calibrate` (16 samples)",
              "dynamo": "`torch.onnx.export`, default exporter", "torchscript": "`torch.onnx.export(dynamo=False)`"}
    for title in NETWORKS:
        base = figures[title, "float32"]["export"]["seconds"]
        weight_mib = figures[title, "weights"] / 2**20
        for kind, label in labels.items():
            f = figures[title, kind]
            e = f["export"]
            lines.append(f"| {title} | {label} | {e['seconds']:.2f} s | {e['seconds'] / base:.2f} | "
                         f"{e['peak_mib']:.0f} MiB | {e['peak_mib'] / weight_mib:.1f}x | {f['size'] / 2**20:.1f} MiB |")
    accuracy = digits["accuracy"]
    lines += [
        "",
        f"Accuracy: LeNet-5 (the zoo's, through `to_torch()`) trained with Adam for {digits['epochs']} epochs on",
        f"scikit-learn's bundled digits upsampled to 28x28 ({digits['train']} training, {digits['test']} test",
        "images, stratified), exported with the trained weights, int8 calibrated on the training split;",
        "test-split accuracy:",
        "",
        "| model | test accuracy | difference from float32 |",
        "| --- | ---: | ---: |",
    ]
    for label, value in accuracy.items():
        lines.append(f"| {label} | {value:.2%} | {(value - accuracy['float32']) * 100:+.2f} points |")
    resnet = figures["ResNet-50", "float32"][1] / figures["ResNet-50", "int8"][1]
    lines += [
        "",
        f"int8 and float32 agree on the top class of {digits['int8_agreement']:.1%} of the test images.",
        f"Targets: int8 at least 2.5x faster than float32 for ResNet-50 (here {resnet:.2f}x at batch 1);",
        f"int8 within 1 point of float32 on the digits (here "
        f"{(accuracy['int8'] - accuracy['float32']) * 100:+.2f}).",
    ]
    write_section("deploy", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
