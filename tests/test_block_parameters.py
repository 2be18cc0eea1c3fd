"""Blocks as parameters: a block (or a layer kind) passed by name, which the body uses as an
item (`block stage(unit, c, n) { unit(c, stride=2); unit(c) * (n - 1) }`). ResNet-18 and
ResNet-50 built from one `resnet(unit, ...)` block hold the reference figures and keys."""

import pytest
from conftest import SPECS

import cnnspec
from cnnspec.diagnostics import SpecError

RESNET = """input x: 3x224x224
import "common/resnet.cnn"

block stage(unit, c, n, stride=1) {
  unit(c, stride=stride)
  unit(c) * (n - 1)
}

block resnet(unit, n1, n2, n3, n4) {
  *stem()
  layer1: stage(unit, 64, n1)
  layer2: stage(unit, 128, n2, stride=2)
  layer3: stage(unit, 256, n3, stride=2)
  layer4: stage(unit, 512, n4, stride=2)
  avgpool: avgpool global
  flatten
  fc: linear 1000
}

*resnet(UNIT, COUNTS)
"""


@pytest.mark.parametrize("name, unit, counts", [("resnet18", "basic", "2, 2, 2, 2"),
                                                ("resnet50", "bottleneck", "3, 4, 6, 3")])
def test_a_network_built_from_a_block_passed_in_matches_its_reference(name, unit, counts, reference):
    path = SPECS / f"{name}_from_stages.cnn"
    network = cnnspec.load(path, texts={path: RESNET.replace("UNIT", unit).replace("COUNTS", counts)})
    figures = reference[name]
    assert (network.params, network.macs) == (figures["params"], figures["macs_conv_linear"])
    keyed = {row.path for row in network.rows if row.params or row.buffers}
    assert keyed == {key.rsplit(".", 1)[0] for key in figures["state_dict"]}
    zoo = cnnspec.load(SPECS / f"{name}.cnn")
    assert [(r.path, r.kind, r.out_shape) for r in network.rows] == [(r.path, r.kind, r.out_shape) for r in zoo.rows]


SMALL = """input x: 8x16x16
block basic(c, stride=1) { conv c 3x3 stride=stride pad=1 bias=false; bn; relu }
block wide(c, stride=1) { conv c*2 3x3 stride=stride pad=1; relu }
block stage(unit, c, n, act=relu) { unit(c, stride=2); unit(c) * (n - 1); act }
block outer(u) { inner: stage(u, 8, 2, act=gelu) }
layer1: stage(basic, 16, 2)
layer2: stage(wide, 8, 3, act=identity)
layer3: outer(basic)
"""


def test_blocks_and_kinds_pass_through_calls_and_defaults():
    network = cnnspec.loads(SMALL)
    assert [(r.path, r.kind, r.out_shape) for r in network.rows if r.path.startswith("layer3")] == [
        ("layer3.inner.0.0", "conv", (8, 2, 2)), ("layer3.inner.0.1", "bn", (8, 2, 2)),
        ("layer3.inner.0.2", "relu", (8, 2, 2)), ("layer3.inner.1.0", "conv", (8, 2, 2)),
        ("layer3.inner.1.1", "bn", (8, 2, 2)), ("layer3.inner.1.2", "relu", (8, 2, 2)),
        ("layer3.inner.2", "gelu", (8, 2, 2))]
    assert network.scope_blocks["layer2.1"] == "wide" and network.scope_blocks["layer3.inner.0"] == "basic"
    # `wide` is used only by being passed: not W113
    assert [d.code for d in network.diagnostics] == []


def test_the_emitted_source_equals_to_torch():
    pytest.importorskip("torch")
    from test_torch_source import emitted_runs_as_to_torch

    emitted_runs_as_to_torch(cnnspec.loads(SMALL))


@pytest.mark.parametrize("call, code, message", [
    ("stage(nothing, 4)", "E107", "unknown name `nothing`"),
    ("stage(4, 4)", "E101", "`unit` is a parameter holding `4`, not a block or layer kind"),
    ("stage(stage, 4)", "E121", "block `stage` calls itself: `stage` -> `stage`"),
])
def test_what_cannot_be_passed_is_located(call, code, message):
    with pytest.raises(SpecError) as error:
        cnnspec.loads(f"input x: 8x16x16\nblock stage(unit, c) {{ unit(c) }}\n{call}\n")
    (found,) = error.value.diagnostics
    assert (found.code, found.message) == (code, message)
    assert found.span.line in (2, 3)


def test_the_layers_counted_ahead_see_a_block_passed_in():
    # 30 levels each doubling through the block passed to it: refused ahead (E124), at the call
    levels = "".join(f"block l{i}(u) {{ l{i - 1}(u); l{i - 1}(u) }}\n" for i in range(1, 31))
    text = f"input x: 4x8x8\nblock unit() {{ relu }}\nblock l0(u) {{ u() }}\n{levels}l30(unit)\n"
    with pytest.raises(SpecError) as error:
        cnnspec.loads(text)
    (found,) = error.value.diagnostics
    assert found.code == "E124" and found.label == "`l30` expands to 1,073,741,824 layers" and found.span.line == 34
