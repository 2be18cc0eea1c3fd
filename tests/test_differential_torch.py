"""Differential test: for random valid specs (generated as IR), the checker's figures equal what
PyTorch builds and runs, and the generated source computes what `to_torch()` computes.

Per layer: output shape (forward hooks), parameters (`numel()`), buffers, MACs (counted by
hooks from the modules' own attributes and the tensors that flowed). Per network: MACs against
`torch.utils.flop_counter` (FLOPs = 2 x MACs for conv and matmul). 12 examples per layer
kind with random structures around each, and 60 of structures alone: over 380 per run.
"""

import math
import os
import types

import pytest

torch = pytest.importorskip("torch")

from conftest import kind_params  # noqa: E402
from oracle import layerscales  # noqa: E402
from strategies import run_examples  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.torch_source import camel  # noqa: E402
from cnnspec.frontend.printer import print_spec  # noqa: E402
from cnnspec.layers import REGISTRY  # noqa: E402

# raise for a longer hunt: CNNSPEC_EXAMPLES=200 python -m pytest tests/test_differential_torch.py
EXAMPLES_PER_KIND = int(os.environ.get("CNNSPEC_EXAMPLES", 12))
STRUCTURE_EXAMPLES = 5 * EXAMPLES_PER_KIND
BATCH = 2


def hook_macs(module, inputs, output) -> int:
    """Multiply-accumulates per sample from the module's own attributes (torchvision's convention)."""
    nn = torch.nn
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return output[0].numel() * per_output
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return inputs[0][0].numel() * per_input
    if isinstance(module, nn.Linear):
        # over the last dimension, at every position of the others
        return output[0].numel() * module.in_features
    return 0


def applications(network) -> dict[str, list[int]]:
    """Each layer's path -> its rows' ids: one row per application, the first holding the
    parameters (a module applied again by `use` has a row for each time it runs)."""
    rows: dict[str, list[int]] = {}
    for row in network.rows:
        if row.kind in REGISTRY:
            rows.setdefault(row.path, []).append(row.id)
    return rows


def observe(network, model, inputs):
    """Run `model` on `inputs`, recording each application's output shape and MACs by its row."""
    paths = applications(network)
    seen = {}
    handles = []
    for path, module in model.named_modules():
        if path in paths:
            def hook(module, args, output, rows=iter(paths[path])):
                seen[next(rows)] = (tuple(output.shape[1:]), hook_macs(module, args, output))
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return out, seen


def random_inputs(network, generator) -> tuple:
    """A random batch for each input, in declaration order."""
    shapes = list(network.input_shapes.values()) or [network.input_shape]
    return tuple(torch.randn(BATCH, *shape, generator=generator) for shape in shapes)


def load_generated(source: str, name: str):
    module = types.ModuleType("generated_spec")
    exec(compile(source, "<generated>", "exec"), module.__dict__)
    return getattr(module, camel(name))()


def output_tensors(network, out) -> dict:
    """The tensors a model returned, by output name: a network with `output a, b` returns a dict
    of them in that order, one without a single tensor (named `output` here)."""
    if network.output_shapes:
        assert isinstance(out, dict) and list(out) == list(network.output_shapes)
        return out
    return {"output": out}


def check_against_torch(spec_ir, shape):
    """`shape`: the output's, or for a spec with `output a, b` the shape of each by name."""
    text = print_spec(spec_ir)
    network = cnnspec.loads(text)
    assert (network.output_shapes if isinstance(shape, dict) else network.output_shape) == shape, text
    model = network.to_torch(seed=0).eval()

    inputs = random_inputs(network, torch.Generator().manual_seed(0))
    out, seen = observe(network, model, inputs)
    expected = network.output_shapes or {"output": network.output_shape}
    assert {k: tuple(v.shape) for k, v in output_tensors(network, out).items()} == \
        {k: (BATCH, *v) for k, v in expected.items()}, text

    modules = dict(model.named_modules())
    paths = applications(network)
    # layers with no module to hook, their outputs asked for by path: a layer scale (a bare
    # parameter on its scope, as torchvision's layer_scale), a resize to a value's size
    # (F.interpolate in the forward), a layer written as an expression in the forward (a slice)
    from cnnspec.backends.torch_lowering import lower
    unhooked = set(layerscales(network)) | {node.path for node in network.graph.layers() if lower(node).module is None}
    with torch.no_grad():
        recorded = network.to_torch(seed=0, outputs=sorted(unhooked)).eval()(*inputs) if unhooked else {}
    for row in network.rows:
        if row.kind not in REGISTRY:
            continue
        # an application after the first (`use`) holds no parameters or buffers of its own
        first = row.id == paths[row.path][0]
        if row.path in unhooked:
            params = model.get_parameter(row.path).numel() if row.kind == "layerscale" else 0
            assert (params * first, 0, 0) == (row.params, row.buffers, row.macs), (row.path, text)
            # a path asked for names its first application
            assert not first or tuple(recorded[row.path].shape[1:]) == row.out_shape, (row.path, text)
            continue
        module = modules[row.path]
        assert seen[row.id][0] == row.out_shape, (row.path, text)
        assert sum(p.numel() for p in module.parameters()) * first == row.params, (row.path, text)
        buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
        assert buffers * first == row.buffers, (row.path, text)
        assert seen[row.id][1] == row.macs, (row.path, text)
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        assert trainable * first == row.trainable, (row.path, text)
    assert sum(p.numel() for p in model.parameters()) == network.params

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    assert counter.get_total_flops() == 2 * BATCH * network.macs, text

    generated = load_generated(network.to_torch_source(), network.name)
    assert {k: v.shape for k, v in generated.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}, text
    generated.load_state_dict(model.state_dict(), strict=True)
    generated.eval()
    with torch.no_grad():
        torch.testing.assert_close(generated(*inputs), out, rtol=1e-5, atol=1e-6, msg=lambda m: f"{m}\n{text}")


def check(spec_ir, shape, index):
    check_against_torch(spec_ir, shape)


@pytest.mark.parametrize("kind", kind_params(sorted(REGISTRY)))
def test_checker_and_generated_source_agree_with_torch(kind):
    assert run_examples(kind, EXAMPLES_PER_KIND, check) >= EXAMPLES_PER_KIND


def test_structures_agree_with_torch():
    assert run_examples(None, STRUCTURE_EXAMPLES, check) >= STRUCTURE_EXAMPLES
