"""Weights given to the backends: refused by key when they cannot be the network's (shapes,
complex, integer, boolean, NaN or infinite values, the wrong container), converted with a warning
when a float is not float32, and a network too large for the memory budget refused with E303
before anything is allocated (tracemalloc measures what numpy allocates)."""

import os
import tracemalloc
import warnings

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("onnx")

from click.testing import CliRunner  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec import SpecError  # noqa: E402
from cnnspec.backends.weights import WeightsError, WeightsWarning, random_weights, weight_shapes  # noqa: E402
from cnnspec.cli import main  # noqa: E402

#: 2,516,582,550 parameters: 10.07 GB in fp32 (numpy once tried to allocate 18.6 GiB for them)
HUGE = "network huge\ninput x: 1x4096x4096\nflatten\nlinear 150\n"
SMALL = "network small\ninput x: 3x8x8\nconv 4 3x3 pad=1\nbn\nrelu\navgpool global\nflatten\nlinear 5\n"


def peak_bytes(call) -> int:
    """The most memory numpy and Python held at once while `call` ran, beyond what they held before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def views(network, **replaced):
    """Weights of the declared shapes that take no memory (broadcast zeros), some replaced."""
    weights = {k: np.broadcast_to(np.float32(0), shape) for k, shape in weight_shapes(network).items()}
    return {**weights, **replaced}


@pytest.fixture(scope="module")
def huge():
    return cnnspec.loads(HUGE)


@pytest.fixture(scope="module")
def small():
    return cnnspec.loads(SMALL)


def refused(call):
    with pytest.raises(SpecError) as caught:
        call()
    assert [d.code for d in caught.value.diagnostics] == ["E303"]
    return caught.value.diagnostics[0]


def test_to_onnx_refuses_a_network_over_the_budget_before_allocating(huge):
    diagnostic = None

    def call():
        nonlocal diagnostic
        diagnostic = refused(lambda: huge.to_onnx())
    assert peak_bytes(call) < 50 * 2**20
    assert "10.07GB in fp32" in diagnostic.message and "`memory_budget`" in diagnostic.help
    assert diagnostic.span.line == 4  # the linear layer holds the weights


def test_to_onnx_with_weights_refuses_over_the_budget_before_converting(huge):
    # float64 views: converting them would allocate 10 GB
    weights = {k: np.broadcast_to(np.float64(0), s) for k, s in weight_shapes(huge).items()}
    assert peak_bytes(lambda: refused(lambda: huge.to_onnx(weights=weights))) < 50 * 2**20


def test_a_wrong_shape_is_named_before_anything_large_happens(huge):
    weights = views(huge, **{"1.bias": np.zeros(3, np.float32)})
    with pytest.raises(WeightsError) as caught:
        assert peak_bytes(lambda: huge.to_onnx(weights=weights, memory_budget=None)) < 50 * 2**20
    assert "`1.bias` has shape (3,), expected (150,)" in str(caught.value)


@pytest.mark.parametrize("command", [["export", "-o", "out.onnx"], ["run"], ["verify"]])
def test_cli_refuses_a_network_over_the_budget(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "huge.cnn").write_text(HUGE)
    result = CliRunner().invoke(main, [command[0], "huge.cnn", *command[1:]])
    assert result.exit_code == 1, result.output
    assert "error[E303]" in result.output and "raise `--memory-budget`" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.onnx").exists()


def test_the_cli_budget_can_be_raised_and_lowered(tmp_path, small):
    spec = tmp_path / "small.cnn"
    spec.write_text(SMALL)
    needed = 4 * (small.params + small.buffers)
    lowered = CliRunner().invoke(main, ["export", str(spec), "-o", str(tmp_path / "a.onnx"),
                                        "--memory-budget", str(needed - 1)])
    assert lowered.exit_code == 1 and "E303" in lowered.output
    exact = CliRunner().invoke(main, ["export", str(spec), "-o", str(tmp_path / "a.onnx"), "--memory-budget", str(needed)])
    assert exact.exit_code == 0, exact.output
    bad = CliRunner().invoke(main, ["export", str(spec), "-o", str(tmp_path / "a.onnx"), "--memory-budget", "lots"])
    assert bad.exit_code == 2 and "8G" in bad.output


# ---------------------------------------------------------------- dtypes and values

def weights_as(network, key, array):
    weights = random_weights(network, 0)
    weights[key] = array
    return weights


@pytest.mark.parametrize("dtype", ["int8", "int64", "uint8", "bool", "complex64", "complex128"])
def test_integer_boolean_and_complex_weights_are_refused_by_key(small, dtype):
    shape = weight_shapes(small)["0.weight"]
    with pytest.raises(WeightsError) as caught:
        small.to_onnx(weights=weights_as(small, "0.weight", np.ones(shape, dtype=dtype)))
    assert f"`0.weight` is {dtype}" in str(caught.value)


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_other_floats_are_converted_with_a_warning(small, dtype):
    weights = random_weights(small, 0)
    given = weights["0.weight"].astype(dtype)
    from onnx import numpy_helper

    # fold_bn off keeps the conv's own weight as its initializer
    with pytest.warns(WeightsWarning, match=rf"converted to float32: `0.weight` \({dtype}\)"):
        model = small.to_onnx(weights={**weights, "0.weight": given}, fold_bn=False)
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(stored["0.weight"], given.astype(np.float32))


def test_float32_weights_give_no_warning(small):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small.to_onnx(weights=random_weights(small, 0))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_by_key(small, value):
    weights = random_weights(small, 0)
    weights["1.running_var"] = weights["1.running_var"].copy()
    weights["1.running_var"][2] = value
    with pytest.raises(WeightsError) as caught:
        small.to_onnx(weights=weights)
    assert "`1.running_var` holds 1 NaN or infinite value" in str(caught.value)


def test_a_double_beyond_float32_is_refused_once_rounded(small):
    weights = random_weights(small, 0)
    weights["5.bias"] = np.full(5, 1e39)
    with pytest.raises(WeightsError) as caught, warnings.catch_warnings():
        warnings.simplefilter("error")  # neither numpy's overflow nor a conversion note: the error says it
        small.to_onnx(weights=weights)
    assert "`5.bias` holds 5 NaN or infinite values once rounded to float32" in str(caught.value)


def test_torch_tensors_are_checked_alike(small):
    torch = pytest.importorskip("torch")
    state = small.to_torch(seed=0).state_dict()
    small.to_onnx(weights=state)
    with pytest.warns(WeightsWarning, match="bfloat16"):
        small.to_onnx(weights={**state, "0.bias": state["0.bias"].to(torch.bfloat16)})
    with pytest.raises(WeightsError, match="`0.bias` is complex64"):
        small.to_onnx(weights={**state, "0.bias": state["0.bias"].to(torch.complex64)})


def test_api_misuse_is_a_type_error_at_the_call(small):
    weights = random_weights(small, 0)
    with pytest.raises(TypeError, match="must be a dict of arrays by state_dict key.*not a list"):
        small.to_onnx(weights=list(weights.values()))
    with pytest.raises(TypeError, match=r"keys of `weights` must be state_dict keys \(strings\), not 0"):
        small.to_onnx(weights={0: weights["0.weight"]})
    with pytest.raises(WeightsError, match="`0.weight` is a list, not an array"):
        small.to_onnx(weights={**weights, "0.weight": weights["0.weight"].tolist()})


def test_missing_and_unknown_keys_are_listed(small):
    weights = random_weights(small, 0)
    del weights["0.bias"]
    weights["extra.weight"] = np.zeros(1, np.float32)
    with pytest.raises(WeightsError, match="missing `0.bias`; unknown `extra.weight`"):
        small.to_onnx(weights=weights)


# ---------------------------------------------------------------- weights files through the CLI

def save(path, weights):
    if path.suffix == ".npz":
        np.savez(path, **weights)
    elif path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.array(v, order="C") for k, v in weights.items()}, str(path))
    else:
        import torch

        torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, path)


SUFFIXES = [".npz", pytest.param(".safetensors", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("safetensors") is None, reason="safetensors is not installed")),
    pytest.param(".pt", marks=pytest.mark.skipif(
        __import__("importlib").util.find_spec("torch") is None, reason="torch is not installed"))]


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "small.cnn"
    path.write_text(SMALL)
    return path


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_weight_files_warn_on_conversion_and_refuse_bad_values(tmp_path, spec, small, suffix):
    weights = random_weights(small, 1, statistics=True)
    wider = tmp_path / f"wider{suffix}"
    save(wider, {k: (v.astype(np.float64) if k == "5.weight" else v) for k, v in weights.items()})
    for command in (["export", str(spec), "-o", str(tmp_path / "m.onnx")], ["run", str(spec)], ["verify", str(spec)]):
        result = CliRunner().invoke(main, [*command, "--weights", str(wider)])
        assert result.exit_code == 0, result.output
        assert "warning: weights converted to float32: `5.weight` (float64)" in result.output
    broken = tmp_path / f"broken{suffix}"
    save(broken, {**weights, "0.weight": np.full(weights["0.weight"].shape, np.nan, np.float32)})
    for command in (["export", str(spec), "-o", str(tmp_path / "n.onnx")], ["run", str(spec)], ["verify", str(spec)]):
        result = CliRunner().invoke(main, [*command, "--weights", str(broken)])
        assert result.exit_code == 1
        assert result.output.startswith("error: the weights of `small` are not finite: `0.weight` holds 108 NaN")
        assert "Traceback" not in result.output


def test_a_wrong_shape_in_an_npz_is_refused_before_its_data_is_read(tmp_path, spec, small):
    weights = random_weights(small, 0)
    weights["0.weight"] = np.zeros((4, 3, 3, 3, 1024, 64), np.float32)  # 27 MiB, wrongly shaped
    path = tmp_path / "wrong.npz"
    save(path, weights)
    result = None

    def call():
        nonlocal result
        result = CliRunner().invoke(main, ["export", str(spec), "-o", str(tmp_path / "w.onnx"), "--weights", str(path)])
    assert peak_bytes(call) < 8 * 2**20
    assert result.exit_code == 1
    assert "`0.weight` has shape (4, 3, 3, 3, 1024, 64), expected (4, 3, 3, 3)" in result.output


def test_verify_with_given_weights_compares_those(tmp_path, spec, small):
    weights = random_weights(small, 5, statistics=True)
    path = tmp_path / "given.npz"
    save(path, weights)
    from cnnspec.backends.runtime import verify_network

    report = verify_network(small, weights=str(path))
    assert report.relative_l2 < 1e-5
    result = CliRunner().invoke(main, ["verify", str(spec), "--weights", str(path)])
    assert result.exit_code == 0 and "ok tolerance" in result.output


def test_run_takes_weights_for_a_spec_only(tmp_path, spec, small):
    path = tmp_path / "given.npz"
    save(path, random_weights(small, 0))
    model = tmp_path / "m.onnx"
    assert CliRunner().invoke(main, ["export", str(spec), "-o", str(model)]).exit_code == 0
    result = CliRunner().invoke(main, ["run", str(model), "--weights", str(path)])
    assert result.exit_code == 1 and "--weights is for a spec" in result.output


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc/self/maps")
def test_a_safetensors_file_is_mapped_only_while_a_tensor_is_read(small, tmp_path):
    """Mapped pages count as the process's memory: a file kept mapped beside the arrays read from
    it was another copy of the weights at the export's peak. The arrays read are the file's."""
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    from cnnspec.backends.weights import load_weights

    path = tmp_path / "small.safetensors"
    written = random_weights(small, seed=1)
    save_file(written, str(path))

    def mapped() -> bool:
        with open("/proc/self/maps") as maps:
            return any(line.rstrip().endswith(str(path)) for line in maps)

    stored = load_weights(path)
    read = {key: np.asarray(array) for key, array in stored.items()}
    assert not mapped()
    assert read.keys() == written.keys() and all(np.array_equal(read[k], written[k]) for k in written)
    model = small.to_onnx(weights=stored, fold_bn=False)
    assert not mapped()
    from onnx import numpy_helper

    exported = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert exported.keys() == written.keys() - {"1.num_batches_tracked"}
    assert all(np.array_equal(exported[k], written[k]) for k in exported)
