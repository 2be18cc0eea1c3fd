"""Every layer kind is whole: each option has a range the random-spec generator draws from, the
kind is lowered to PyTorch (module and source) and to ONNX, its declared state is the state_dict
PyTorch builds, and every option reaches each backend.

An option reaches a backend when, for some generated layer, another value of it (or leaving it
out) changes what the backend builds; an option only the training sees (`training_only`: a
momentum, a dropout rate) need not reach the ONNX export, and one the shape rule alone decides
(`shape_only`) neither. Failures name the kind and the option.
"""

from __future__ import annotations

import pytest
from conftest import kind_params
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from strategies import LEAVE_OUT, SPAN, draw_value, infer, input_shapes, layer_fields, statement, write_layer

import cnnspec
from cnnspec import ir
from cnnspec.backends import torch_lowering
from cnnspec.backends.torch_lowering import lower
from cnnspec.frontend.printer import print_spec
from cnnspec.layers import REGISTRY
from cnnspec.layers.domains import Choice, Where

KINDS = sorted(REGISTRY)
#: generated layers per option of a kind at most, the option sure to be written; the work stops
#: once every option has reached every backend and this many states were compared
EXAMPLES = 25
STATES = 20


def options_of(kind: str) -> set[str]:
    return set(REGISTRY[kind].Params.model_fields) - {"kind"}


def fixed(kind: str, name: str) -> bool:
    """An option whose one legal value is its default (`count_pad` of `maxpool`): nothing to lower."""
    spec = REGISTRY[kind]
    domain = spec.ranges[name]
    default = spec.Params.model_fields[name].default
    return isinstance(domain, Choice) and not callable(domain.values) and domain.values == (default,)


@pytest.mark.parametrize("kind", KINDS)
def test_every_option_has_a_range_for_the_generator(kind):
    declared, options = set(REGISTRY[kind].ranges), options_of(kind)
    assert declared == options, (f"`{kind}`: options without a range: {sorted(options - declared)}; "
                                 f"ranges of no option: {sorted(declared - options)}")
    for name in REGISTRY[kind].training_only + REGISTRY[kind].shape_only:
        assert name in options, f"`{kind}` declares `{name}` training-only or shape-only but has no such option"


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_lowering_in_every_backend(kind):
    assert kind in torch_lowering.LOWERINGS, f"`{kind}` has no PyTorch lowering"
    pytest.importorskip("onnx")
    from cnnspec.backends.onnx import LOWERINGS

    assert kind in LOWERINGS, f"`{kind}` has no ONNX lowering"


def one_layer(kind: str, fields: dict, shape) -> cnnspec.Network:
    """A network of one layer that applies to `shape`."""
    # every argument written as an option
    layer = write_layer(lambda strategy: False, kind, fields)
    text = print_spec(ir.SpecFile(path="<kind>", statements=(
        ir.InputDecl(name="x", dims=tuple(shape), span=SPAN, dims_span=SPAN), statement([layer]))))
    return cnnspec.loads(text)


def variant(draw, kind: str, shape, fields: dict, name: str) -> dict | None:
    """The layer with another value of option `name`, or without it; where that does not apply,
    with the options after it drawn again (a window pool's kernel once the pool is not global).
    None when no variant applies."""
    spec = REGISTRY[kind]
    order = list(spec.ranges)
    before = {k: fields.get(k, LEAVE_OUT) for k in order[:order.index(name)]}
    where = Where(tuple(shape), {k: v for k, v in before.items() if v is not LEAVE_OUT})
    changed = LEAVE_OUT
    for _ in range(8 if spec.ranges[name].applies(where) else 0):
        again = draw_value(draw, spec.ranges[name], where)
        if again != fields.get(name):
            changed = again
            break
    other = {k: v for k, v in {**fields, name: changed}.items() if v is not LEAVE_OUT}
    if infer(kind, other, shape) is None:
        other = layer_fields(draw, kind, shape, keep={**before, name: changed})
    return other if other != fields and infer(kind, other, shape) is not None else None


def built(network) -> dict:
    """What each backend makes of a one-layer network: the PyTorch lowering, the emitted source
    (its code), and the ONNX graph (with the initial values the kind's state declares)."""
    from cnnspec.backends.weights import random_weights

    (node,) = network.graph.layers()
    # the source's docstrings give the network's figures, which change with any option
    code = [line for line in network.to_torch_source().splitlines() if '"""' not in line]
    return {"torch": lower(node), "torch source": code,
            "onnx": network.to_onnx(weights=random_weights(network)).graph}


def torch_state(lowering, torch) -> dict:
    """Shapes of the state_dict PyTorch builds from a lowering, and from its emitted source."""
    from cnnspec.backends.torch import instantiate
    from cnnspec.backends.torch_source import helper_source

    if lowering.parameter is not None:
        shape, _ = lowering.parameter
        return {"": tuple(shape)}
    if lowering.module is None:
        # an expression in the forward (a slice): no module, no state
        return {}
    module = instantiate(lowering)
    namespace = {"nn": torch.nn, "torch": torch}
    if lowering.module.is_helper:
        exec(compile(helper_source(lowering.module.name), "<helper>", "exec"), namespace)
    from_source = eval(lowering.module.source(), namespace)
    assert type(from_source).__name__ == type(module).__name__
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in from_source.state_dict().items()}, "emitted source differs"
    return shapes


@pytest.mark.parametrize("kind", kind_params(KINDS))
def test_every_kind_declares_its_state_and_every_option_reaches_every_backend(kind):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    spec = REGISTRY[kind]
    options = sorted(options_of(kind))
    pending = {(backend, name) for name in options if not fixed(kind, name) and name not in spec.shape_only
               for backend in ("torch", "torch source", "onnx")
               if not (backend == "onnx" and name in spec.training_only)}
    layers = []

    def run(name: str | None) -> None:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def examples(data):
            # every draw is made whatever was found before, as Hypothesis needs; the work is skipped
            shape = data.draw(input_shapes())
            fields = layer_fields(data.draw, kind, shape, always=name)
            if infer(kind, fields, shape) is None:
                return
            other = variant(data.draw, kind, shape, fields, name) if name is not None else None
            wanted = other is not None and any(n == name for _, n in pending)
            if len(layers) >= STATES and not wanted:
                return
            network = one_layer(kind, fields, shape)
            (node,) = network.graph.layers()
            layers.append(node)
            this = built(network)
            declared = {t.key: t.shape for t in spec.state(node.params, node.in_shape)}
            assert torch_state(this["torch"], torch) == declared, \
                f"`{kind}`: the declared state {declared} is not what PyTorch builds, at {shape} with {fields}"
            if wanted:
                that = built(one_layer(kind, other, shape))
                for backend in this:
                    if this[backend] != that[backend]:
                        pending.discard((backend, name))

        examples()

    for name in options or [None]:
        run(name)
    assert layers, f"no generated `{kind}` layer applied to any input: check its ranges"
    missing = sorted(f"`{name}` in {backend}" for backend, name in pending)
    assert not missing, f"`{kind}`: options that change nothing a backend builds: {', '.join(missing)}"
