"""onnxruntime: run a spec or an .onnx file, and verify the ONNX backend against PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np

    from cnnspec.network import Network


class RunError(Exception):
    """An input or model file that cannot be used."""


def session(model, threads: int = 2, optimise: bool = True):
    """An onnxruntime session on the CPU from a ModelProto or a path."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if not optimise:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(str(source) if isinstance(source, Path) else source, options,
                                providers=["CPUExecutionProvider"])


def run_model(target: str, input_path: str | None, batch: int, seed: int,
              load_network: Callable[[str], "Network"]) -> "np.ndarray":
    """Run an .onnx file, or a spec with seeded random weights, on an input file or a random batch."""
    import numpy as np

    if target.endswith(".onnx"):
        try:
            sess = session(target)
        except Exception as error:  # onnxruntime raises its own exception types for unreadable models
            raise RunError(f"cannot load {target}: {str(error).splitlines()[0]}") from None
    else:
        sess = session(load_network(target).to_onnx(seed=seed))
    declared = sess.get_inputs()[0]
    per_sample = [d for d in declared.shape[1:]]
    if input_path is not None:
        try:
            x = np.load(input_path, allow_pickle=False)
        except Exception as error:  # numpy's reader fails in many ways on a bad file
            raise RunError(f"cannot read {input_path}: {error}") from None
        if list(x.shape) == per_sample:
            x = x[None]
        if list(x.shape[1:]) != per_sample:
            raise RunError(f"{input_path} holds an array of shape {x.shape}; the model takes "
                           f"(N, {', '.join(map(str, per_sample))})")
        x = x.astype(np.float32)
    else:
        x = np.random.default_rng(seed).standard_normal((batch, *per_sample)).astype(np.float32)
    return sess.run(None, {declared.name: x})[0]


def describe_output(y: "np.ndarray") -> str:
    """The output's shape, and for a classifier's scores the top-5 of each sample."""
    import numpy as np

    lines = [f"output shape {'x'.join(map(str, y.shape))}"]
    if y.ndim == 2 and y.shape[1] >= 2:
        for i, scores in enumerate(y[:8]):
            top = np.argsort(scores)[::-1][:5]
            ranked = ", ".join(f"{c} ({scores[c]:.4g})" for c in top)
            lines.append(f"sample {i}: top-5 {ranked}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    relative_l2: float


def compare(actual: "np.ndarray", expected: "np.ndarray") -> Comparison:
    """Differences of `actual` from `expected`; the relative one over |expected| floored at 1e-6."""
    import numpy as np

    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    scale = np.maximum(np.abs(expected.astype(np.float64)), 1e-6)
    norm = max(float(np.linalg.norm(expected)), 1e-12)
    return Comparison(tuple(expected.shape[1:]), float(difference.max()), float((difference / scale).max()),
                      float(np.linalg.norm(difference)) / norm)


def verify_network(network: "Network", seed: int = 0, opset: int | None = None, batch: int = 2) -> Comparison:
    """The same random weights (random batch-norm statistics too) and input through PyTorch in
    eval mode and through onnxruntime."""
    import numpy as np
    import torch

    from cnnspec.backends.weights import random_weights

    weights = random_weights(network, seed, statistics=True)
    model = network.to_torch()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    model.eval()
    x = np.random.default_rng(seed + 1).standard_normal((batch, *network.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    onnx_model = network.to_onnx(weights=weights, opset=opset)
    sess = session(onnx_model)
    actual = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return compare(actual, expected)
