"""Random DAGs of named values (`strategies.dag_specs`): one to three inputs, several values alive
at once, paths from earlier values (one that only a merge reads written in it, `add(v1, v0 ->
conv 3 1x1)`), sums, gated products, concatenations with and without cropping, channel slices and
split pieces, resizes (to another value's size too), labelled
modules applied again (`use`), and one to three named outputs (some returned under a name of their
own). On each: the checker accepts it without a value's diagnostic; its shape of
every output, its parameters and MACs (per layer and in total) equal what PyTorch builds and
measures, and the emitted source computes the same; onnxruntime computes PyTorch's outputs, each
within tolerance; the printer's text parses back to the same IR and `fmt` keeps it; and every
row's and every output's receptive field equals the gradient oracle's (`oracle.py`). The same
examples every run (derandomized); more with `CNNSPEC_EXAMPLES`, and behind `-m slow`."""

import collections
import os

import pytest
from strategies import run_dags

import cnnspec
from cnnspec.frontend.formatter import format_text
from cnnspec.frontend.printer import print_spec

#: raise for a longer hunt: CNNSPEC_EXAMPLES=200 python -m pytest tests/test_random_dags.py
EXAMPLES = int(os.environ.get("CNNSPEC_EXAMPLES", 12))
#: diagnostics of named values and inputs: read where none is bound, never read, bound twice,
#: not visible, an input never read; of `use`: no such module, one that does not fit
VALUE_CODES = {"E150", "E151", "W002", "W003", "W004", "E152", "E153"}


def constructs(spec_ir) -> collections.Counter:
    """What a drawn DAG holds: value merges by kind, paths from a named value (written in a merge
    too), resizes to a value's size, `use`, inputs and outputs."""
    found = collections.Counter()
    inputs = sum(st.node == "input" for st in spec_ir.statements)
    found["several inputs"] += inputs > 1
    for st in spec_ir.statements:
        if st.node == "output":
            found["outputs"] += len(st.names)
            found["several outputs"] += len(st.names) > 1
            found["output renamed"] += any(st.keys)
        if st.node != "items":
            continue
        found["from a value"] += st.source is not None
        found["block over values"] += bool(st.bindings)
        items = list(st.chain)
        for item in items:
            if item.node == "repeat":
                item = item.item
            if item.node == "value_merge":
                found[" ".join((item.op, *item.flags))] += 1
                found["three operands"] += len(item.operands) == 3
                # a path written in place, `add(v1, v0 -> conv 3 1x1)`: its items count as well
                found["chain in a merge"] += any(item.chains)
                items += [inner for chain in item.chains if chain is not None for inner in chain.chain]
            found["use"] += item.node == "use"
            found["slice or split"] += item.node == "layer" and item.kind in ("slice", "split")
            found["resize to a value"] += item.node == "layer" and any(
                o.key == "size" and o.value.node == "ref" for o in item.options)
    return found


class Coverage:
    """Counts what the examples held, so a generator that stops drawing a construct fails."""

    def __init__(self):
        self.found = collections.Counter()

    def add(self, spec_ir):
        self.found.update(constructs(spec_ir))

    def assert_seen(self, *names):
        missing = [name for name in names if not self.found[name]]
        assert not missing, (missing, dict(self.found))


EVERY_CONSTRUCT = ("add", "scale", "concat", "concat crop", "three operands", "from a value", "several outputs",
                   "several inputs", "use", "resize to a value", "slice or split", "output renamed", "block over values",
                   "chain in a merge")


def checked(spec_ir):
    text = print_spec(spec_ir)
    network = cnnspec.loads(text)
    assert not [d.code for d in network.diagnostics if d.code in VALUE_CODES], text
    return text, network


def test_random_dags_check_and_agree_with_torch():
    pytest.importorskip("torch")
    from test_differential_torch import check_against_torch

    coverage = Coverage()

    def check(spec_ir, shapes, index):
        checked(spec_ir)
        check_against_torch(spec_ir, shapes)
        coverage.add(spec_ir)

    assert run_dags(2 * EXAMPLES, check) >= 2 * EXAMPLES
    coverage.assert_seen(*EVERY_CONSTRUCT)


def test_random_dags_agree_between_onnxruntime_and_torch():
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime

    coverage = Coverage()

    def check(spec_ir, shapes, index):
        _, network = checked(spec_ir)
        assert network.output_shapes == shapes
        check_against_onnxruntime(spec_ir, shapes, fold_bn=index % 2 == 0)
        coverage.add(spec_ir)

    assert run_dags(EXAMPLES, check) >= EXAMPLES
    coverage.assert_seen("add", "concat", "several outputs", "from a value")


def test_random_dags_print_parse_back_and_format_unchanged():
    from test_fmt import meaning, without_positions

    def check(spec_ir, shapes, index):
        text = print_spec(spec_ir)
        assert meaning(text) == without_positions(spec_ir.model_dump()), text
        assert format_text(text) == text
        assert cnnspec.loads(format_text(text)).output_shapes == shapes

    assert run_dags(4 * EXAMPLES, check) >= 4 * EXAMPLES


#: DAGs the many-DAG run found where cnnspec's field and the gradient's disagreed: a branch through
#: `channels_first` (its positions on other tensor axes than the rest's) merged with others, then
#: narrowed by a crop or a stride, which the merged field, one position for the whole tensor, could
#: not follow
PERMUTED_BRANCH_MERGES = {
    "cropped after the merge (#672)": """network generated
input x: 1x3x3x3
stem: bn
relu
v2 = body: relu
head: channels_first
v3 = mix: relu
v2 -> upsample size=v3
v4 = conv out=3 kernel=1
avgpool global=true
conv out=3 kernel=1
v5 = sigmoid
v6 = scale(v3, v4, v5)
v7 = conv out=1 kernel=1
v8 = concat(v6, v7)
v9 = concat crop(v8, v5)
output v9
""",
    "strided after the merge (#366)": """network generated
input x: 4x8x6x12
tail: conv 4 kernel=3 stride=2 pad=1
v1 = head: split 3 index=0
body: channels_first
stem: relu
upsample size=v1
v3 = conv out=3 kernel=1
avgpool global=true
conv out=3 kernel=1
v4 = sigmoid
v5 = scale(v1, v3, v4)
v6 = conv out=3 kernel=1
scale(v5, v6)
v8 = gate: conv out=1 kernel=1 stride=2
output v8
""",
}


class OracleRun:
    """The gradient oracle on random DAGs: every row's field and every output's, and the
    activation figures, at a larger input where the spec allows one."""

    def __init__(self):
        from oracle import Tally

        self.tally = Tally()
        self.coverage = Coverage()

    def check(self, spec_ir, shapes, index):
        from oracle import measure_activations, measure_outputs
        from test_receptive_field_oracle import assert_clean, grown, oracle

        text, network = checked(spec_ir)
        try:
            larger = cnnspec.loads(text, input={name: grown(shape) for name, shape in network.input_shapes.items()})
        except cnnspec.SpecError:
            # fixed sizes (an adaptive pool's, an upsampling's) that agree only at the declared input
            larger = network
        context = f"random DAG #{index} at {larger.input_shape}:\n{text}\n"
        tally = oracle(larger, context=context)
        outputs = type(tally)()
        problems = measure_outputs(larger, context, outputs) + measure_activations(network, context)
        tally.add(outputs)
        assert_clean(tally, problems)
        assert outputs.exact > 0 or all(name == "x" or not larger.output_shapes[name][1:]
                                        for name in larger.output_shapes), context
        self.tally.add(tally)
        self.coverage.add(spec_ir)


def test_random_dags_fields_and_activations_equal_the_gradient_oracle():
    pytest.importorskip("torch")
    run = OracleRun()
    assert run_dags(EXAMPLES, run.check) >= EXAMPLES
    assert run.tally.exact > 10 * EXAMPLES and run.tally.whole > 0 and run.tally.sizes > 0
    run.coverage.assert_seen("add", "several outputs", "from a value")


@pytest.mark.parametrize("text", PERMUTED_BRANCH_MERGES.values(), ids=PERMUTED_BRANCH_MERGES.keys())
def test_a_merge_over_a_permuted_branch_is_followed_element_by_element(text):
    """At the merge, the permuted branch's positions meet the others' nowhere on one grid: the
    field is followed element by element, so that what is cropped or strided after it sees what
    its own elements did (#672's last concat: rows 0 and 1 of 3, not the whole)."""
    pytest.importorskip("torch")
    from test_receptive_field_oracle import assert_clean, oracle

    assert_clean(oracle(cnnspec.loads(text)))


def test_a_field_over_inputs_of_two_sizes_is_their_extent():
    """Found by the random DAGs: position 7 of `x` (16 long) scaled by a gate pooled over all of
    `y` (5 long) depends on positions 0 to 4 of `y` and 7 of `x`, the extent 0 to 7 on the one
    grid the README describes, and position 15 on 0 to 15: the field is 16, not `whole` of `y`'s 5."""
    pytest.importorskip("torch")
    from test_receptive_field_oracle import assert_clean, oracle

    text = "input x: 1x16\ninput y: 1x5\ny -> avgpool global, conv 1 1\nv2 = sigmoid\nscale(v2, x)\n"
    assert_clean(oracle(cnnspec.loads(text)))


@pytest.mark.slow
def test_many_random_dags_agree_with_torch_onnxruntime_and_the_oracle():
    """Forty times the quick run's examples, each through every check above."""
    pytest.importorskip("onnxruntime")
    from test_differential_onnx import check_against_onnxruntime
    from test_differential_torch import check_against_torch

    run = OracleRun()

    def check(spec_ir, shapes, index):
        check_against_torch(spec_ir, shapes)
        check_against_onnxruntime(spec_ir, shapes, fold_bn=index % 2 == 0)
        run.check(spec_ir, shapes, index)

    assert run_dags(40 * EXAMPLES, check) >= 40 * EXAMPLES
    run.coverage.assert_seen(*EVERY_CONSTRUCT)
