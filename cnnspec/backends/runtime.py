"""onnxruntime: run a spec or an .onnx file, and verify the ONNX backend against PyTorch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np

    from cnnspec.graph import CheckedGraph


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


@dataclass(frozen=True)
class Run:
    """A model's (first) output, the class labels its metadata names (`None` without), and every
    output by its name when the model has several."""

    output: "np.ndarray"
    labels: tuple[str, ...] | None = None
    named: dict = field(default_factory=dict)


#: onnxruntime's names of the input types cnnspec's models take
INPUT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16"}


def run_model(target: str, input_path: str | None, batch: int, seed: int,
              load_network: Callable[[str], "CheckedGraph"], weights=None, image_path: str | None = None,
              **budget) -> Run:
    """Run an .onnx file, or a spec with `weights` (a file or a dict) or seeded random ones, on an
    input file, an image (read with the preprocessing the file's metadata states) or a random
    batch. `budget`: `to_onnx`'s `memory_budget` and `budget_option`."""
    import numpy as np

    from cnnspec.backends.metadata import Preprocessing, labels_of, read_image
    from cnnspec.backends.onnx import to_onnx

    if target.endswith(".onnx"):
        try:
            sess = session(target)
        except Exception as error:  # onnxruntime raises its own exception types for unreadable models
            raise RunError(f"cannot load {target}: {str(error).splitlines()[0]}") from None
        props = dict(sess.get_modelmeta().custom_metadata_map)
    else:
        network = load_network(target)
        sess = session(to_onnx(network, weights=read_weights(weights), seed=seed, **budget))
        props = {}
    declared = sess.get_inputs()
    if image_path is not None:
        if len(declared) > 1:
            raise RunError(f"the model takes {len(declared)} inputs ({', '.join(d.name for d in declared)}): "
                           "--image feeds a model of one image input; give an .npz of each input by name "
                           "with --input, or --random")
        feed = {declared[0].name: read_image(image_path, tuple(declared[0].shape[1:]),
                                             Preprocessing.from_properties(props))[None]}
    elif input_path is not None:
        feed = read_inputs(input_path, declared)
    else:
        rng = np.random.default_rng(seed)
        feed = {d.name: rng.standard_normal((batch, *d.shape[1:])) for d in declared}
    outputs = sess.run(None, {d.name: feed[d.name].astype(INPUT_TYPES.get(d.type, "float32")) for d in declared})
    names = [o.name for o in sess.get_outputs()]
    return Run(outputs[0], labels_of(props), dict(zip(names, outputs)) if len(outputs) > 1 else {})


def read_inputs(path: str, declared) -> dict:
    """The arrays of `path` by the model's input names: a .npy for a model of one input, an .npz
    holding each input under its name for one of several; each of the input's per-sample shape,
    or a batch of it."""
    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy's reader fails in many ways on a bad file
        raise RunError(f"cannot read {path}: {error}") from None
    if isinstance(loaded, np.ndarray):
        if len(declared) > 1:
            raise RunError(f"{path} holds one array; the model takes {len(declared)} inputs "
                           f"({', '.join(d.name for d in declared)}): give an .npz holding each by name")
        arrays = {declared[0].name: loaded}
    else:
        missing = [d.name for d in declared if d.name not in loaded.files]
        if missing:
            raise RunError(f"{path} holds no array named {', '.join(missing)}; it holds "
                           f"{', '.join(loaded.files) or 'none'}")
        arrays = {d.name: loaded[d.name] for d in declared}
    feed = {}
    for d in declared:
        x, per_sample = arrays[d.name], list(d.shape[1:])
        if list(x.shape) == per_sample:
            x = x[None]
        if list(x.shape[1:]) != per_sample:
            what = f"{path}'s `{d.name}`" if len(declared) > 1 else path
            raise RunError(f"{what} holds an array of shape {x.shape}; the model takes "
                           f"(N, {', '.join(map(str, per_sample))})")
        feed[d.name] = x
    return feed


def describe_output(y: "np.ndarray", labels: tuple[str, ...] | None = None) -> str:
    """The output's shape, and for a classifier's scores the top-5 of each sample (with the
    classes' labels when given)."""
    import numpy as np

    lines = [f"output shape {'x'.join(map(str, y.shape))}"]
    if y.ndim == 2 and y.shape[1] >= 2:
        named = labels is not None and len(labels) == y.shape[1]
        for i, scores in enumerate(y[:8]):
            top = np.argsort(scores)[::-1][:5]
            ranked = ", ".join(f"{c} {labels[c]} ({scores[c]:.4g})" if named else f"{c} ({scores[c]:.4g})"
                               for c in top)
            lines.append(f"sample {i}: top-5 {ranked}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """How far `actual` is from `expected` (`compare`): the largest difference, the largest
    |expected| (`peak`), and the relative L2 difference, ||actual - expected|| / ||expected||."""

    shape: tuple[int, ...]
    max_abs: float
    peak: float
    relative_l2: float

    @property
    def max_of_peak(self) -> float:
        """The largest difference over the largest |expected|: max|a - e| / max|e|. Unlike the
        largest elementwise |a - e| / |e|, it does not blow up where an expected value is near
        zero (where float32 rounding leaves a difference of the size of the values around it)."""
        return self.max_abs / self.peak if self.peak > 0 else (0.0 if self.max_abs == 0 else float("inf"))


def compare(actual: "np.ndarray", expected: "np.ndarray") -> Comparison:
    """Differences of `actual` from `expected`, in float64."""
    import numpy as np

    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    norm = max(float(np.linalg.norm(expected)), 1e-12)
    return Comparison(tuple(expected.shape[1:]), float(difference.max(initial=0.0)),
                      float(np.abs(expected).max(initial=0.0)), float(np.linalg.norm(difference)) / norm)


def read_weights(weights):
    """A weights file's arrays by key (read when used); a dict or None as it is."""
    from cnnspec.backends.weights import load_weights

    return load_weights(weights) if isinstance(weights, (str, Path)) else weights


def verified_weights(network: "CheckedGraph", weights, seed: int, **budget) -> dict:
    """`weights` checked (a file or a dict), or random ones with random batch-norm statistics;
    `budget` checked before any is made."""
    from cnnspec.backends.weights import check_budget, prepare_weights, random_weights

    memory_budget, option = budget.get("memory_budget"), budget.get("budget_option", "memory_budget")
    if weights is None:
        check_budget(network, memory_budget, option)
        return random_weights(network, seed, statistics=True)
    return prepare_weights(network, read_weights(weights), memory_budget, option)


def verify_network(network: "CheckedGraph", seed: int = 0, opset: int | None = None, batch: int = 2, weights=None,
                   deployment=None, **budget) -> Comparison:
    """`weights` (a file or a dict; by default random ones, random batch-norm statistics too) and
    the same random input through PyTorch in eval mode and through onnxruntime, the model in the
    precision of `deployment` (float32 by default; float16 with `precision="float16"`). `budget`:
    `to_onnx`'s `memory_budget` and `budget_option`, checked before either model is built."""
    import numpy as np
    import torch

    from cnnspec.backends.deploy import convert
    from cnnspec.backends.onnx import DEFAULT_OPSET, to_onnx
    from cnnspec.backends.torch import to_torch

    weights = verified_weights(network, weights, seed, **budget)
    model = to_torch(network, memory_budget=None)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    model.eval()
    rng = np.random.default_rng(seed + 1)
    xs = [rng.standard_normal((batch, *shape)).astype(np.float32) for shape in network.input_shapes.values()]
    with torch.no_grad():
        expected = model(*map(torch.from_numpy, xs))
    # declared outputs (a dict, in the spec's order, one or several) are compared as one on both
    # sides: each sample's values joined
    named = isinstance(expected, dict)
    expected = joined([expected[name] for name in network.output_shapes]) if named else expected.numpy()
    onnx_model = to_onnx(network, weights=weights, opset=opset or DEFAULT_OPSET, memory_budget=None)
    if deployment is not None:
        onnx_model = convert(onnx_model, network, deployment)
    sess = session(onnx_model)
    actual = sess.run(None, {declared.name: x.astype(INPUT_TYPES.get(declared.type, "float32"))
                             for declared, x in zip(sess.get_inputs(), xs)})
    return compare(joined(actual) if named else actual[0], expected)


def joined(outputs) -> "np.ndarray":
    """Several outputs as one (N, total) array: each sample's values flattened, in order."""
    import numpy as np

    return np.concatenate([np.asarray(o).reshape(len(o), -1) for o in outputs], axis=1)


@dataclass(frozen=True)
class Int8Comparison:
    """int8 against float32 on the calibration data: the share of samples whose top class is the
    same (`None` for an output that is not a vector of scores), and the relative L2 difference."""

    samples: int
    top1_agreement: float | None
    relative_l2: float


def verify_int8(network: "CheckedGraph", calibration, preprocessing=None, seed: int = 0, opset: int | None = None,
                weights=None, **budget) -> Int8Comparison:
    """The float32 model and its int8 quantisation, calibrated on `calibration` (a path, see
    `quantise.calibration_arrays`), both run by onnxruntime on the same calibration samples."""
    import numpy as np

    from cnnspec.backends.onnx import DEFAULT_OPSET, to_onnx
    from cnnspec.backends.quantise import calibration_arrays, network_input, to_int8

    weights = verified_weights(network, weights, seed, **budget)
    samples = calibration_arrays(calibration, network_input(network), preprocessing)
    float_model = to_onnx(network, weights=weights, opset=opset or DEFAULT_OPSET, memory_budget=None)
    float_output = run_batches(session(float_model), samples)
    int8_output = run_batches(session(to_int8(float_model, samples)), samples)
    agreement = None
    if float_output.ndim == 2 and float_output.shape[1] >= 2:
        agreement = float(np.mean(float_output.argmax(1) == int8_output.argmax(1)))
    return Int8Comparison(len(samples), agreement, compare(int8_output, float_output).relative_l2)


def run_batches(sess, samples: "np.ndarray", batch: int = 16) -> "np.ndarray":
    """The outputs of a session on `samples`, run `batch` at a time."""
    import numpy as np

    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: samples[i:i + batch]})[0] for i in range(0, len(samples), batch)])
