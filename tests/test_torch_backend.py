"""The PyTorch backend: state_dict keys against torchvision's, training, seeds, literal kernels,
named outputs and the memory budget."""

import pytest

torch = pytest.importorskip("torch")

from conftest import KEYED_SOURCES, SPECS, full_size, zoo_cases  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec import SpecError  # noqa: E402

TORCHVISION = dict(zoo_cases(KEYED_SOURCES))


def reference_state_dict(entry):
    """A state_dict with the reference's keys and shapes (BatchNorm's counter is an int64 scalar)."""
    return {key: torch.zeros(shape, dtype=torch.long if key.endswith("num_batches_tracked") else torch.float32)
            for key, shape in entry["state_dict"].items()}


@pytest.mark.parametrize("spec,key", [
    pytest.param(spec, key, marks=pytest.mark.slow) if full_size(spec) else (spec, key)
    for spec, key in sorted(TORCHVISION.items())
])
def test_zoo_loads_the_reference_state_dict_strictly(spec, key, reference):
    model = cnnspec.load(SPECS / f"{spec}.cnn").to_torch()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == reference[key]["state_dict"]
    model.load_state_dict(reference_state_dict(reference[key]), strict=True)


@pytest.mark.parametrize("spec", ["alexnet", "resnet18", "lenet5"])
def test_zoo_forward_gives_the_checked_shape(spec):
    network = cnnspec.load(SPECS / f"{spec}.cnn")
    model = network.to_torch(seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *network.input_shape))
    assert tuple(out.shape) == (2, *network.output_shape)


TINY = """
network tiny
input x: 1x12x12
sobel: conv 1 3x3 pad=1 weights=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] frozen
conv 8 3x3 pad=1
bn
relu
residual { conv 8 3x3 pad=1; bn } shortcut { identity }
maxpool 2x2
dropout 0.2
flatten
head: linear 4
"""


def test_a_tiny_spec_trains_and_frozen_kernels_stay_put():
    model = cnnspec.loads(TINY).to_torch(seed=0)
    assert not model.sobel.weight.requires_grad
    sobel = model.sobel.weight.detach().clone()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 1, 12, 12, generator=generator)
    y = torch.randint(0, 4, (32,), generator=generator)
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    losses = []
    for step in range(12):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if step == 0:
            for name, parameter in model.named_parameters():
                if parameter.requires_grad:
                    assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
                else:
                    assert parameter.grad is None, name
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert torch.equal(model.sobel.weight, sobel)


def test_literal_kernels_compute_the_written_filter():
    model = cnnspec.loads(TINY).to_torch(seed=0).eval()
    image = torch.arange(144.0).reshape(1, 1, 12, 12)
    expected = torch.nn.functional.conv2d(image, torch.tensor([[[[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]]]), padding=1)
    assert torch.equal(model.sobel(image), expected)


def test_a_seed_reproduces_the_weights_without_touching_global_state():
    network = cnnspec.loads(TINY)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = network.to_torch(seed=7).state_dict()
    after = torch.rand(1)
    second = network.to_torch(seed=7).state_dict()
    third = network.to_torch(seed=8).state_dict()
    assert torch.equal(before, after)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["1.weight"], third["1.weight"])


def test_train_and_eval_modes():
    network = cnnspec.loads("input x: 64\ndropout 0.5\nbn")
    model = network.to_torch(seed=0)
    x = torch.randn(16, 64)
    model.train()
    assert (model(x) == 0).sum() == 0  # batch norm of a dropped-out batch: nothing lands at exactly 0
    assert model._modules["1"].num_batches_tracked == 1
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    assert model._modules["1"].num_batches_tracked == 1


def test_named_outputs_return_intermediate_activations():
    network = cnnspec.load(SPECS / "resnet18.cnn")
    model = network.to_torch(seed=0, outputs=["layer3", "layer4", "fc", "layer1.0.conv1"]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
        direct = network.to_torch(seed=0).eval()(torch.randn(1, 3, 224, 224))
    assert list(out) == ["layer3", "layer4", "fc", "layer1.0.conv1"]
    assert tuple(out["layer3"].shape) == (1, 256, 14, 14)
    assert tuple(out["layer4"].shape) == (1, 512, 7, 7)
    assert tuple(out["fc"].shape) == tuple(direct.shape) == (1, 1000)
    assert tuple(out["layer1.0.conv1"].shape) == (1, 64, 56, 56)
    # a scope can run on its own
    with torch.no_grad():
        assert torch.equal(model.layer4(out["layer3"]), out["layer4"])


def test_an_unknown_output_name_is_refused_with_a_suggestion():
    network = cnnspec.load(SPECS / "resnet18.cnn")
    with pytest.raises(ValueError, match="did you mean `layer3`"):
        network.to_torch(outputs=["layr3"])


def test_the_memory_budget_refuses_before_allocating():
    network = cnnspec.loads("input x: 4096\nlinear 100000\nbig: linear 100000")
    with pytest.raises(SpecError) as caught:
        network.to_torch(memory_budget=1 << 30)
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.code == "E303"
    assert diagnostic.span.line == 3
    assert "10,000,100,000 parameters" in diagnostic.label
    # within budget it builds
    small = cnnspec.loads("input x: 8\nlinear 4").to_torch(memory_budget=1 << 10)
    assert sum(p.numel() for p in small.parameters()) == 36


def test_reserved_labels_are_refused_by_the_checker():
    names = {n for n in dir(torch.nn.Module()) if not n.startswith("_")} | set(vars(torch.nn.Module()))
    from cnnspec.analysis.elaborate import RESERVED_LABELS
    assert {n for n in names if not n.startswith("_")} <= RESERVED_LABELS
