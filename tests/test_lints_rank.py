"""Every lint in 1D, 2D and 3D: its message names kernels and maps as the language writes them at
that rank (`3`, `3x3`, `3x3x3`), its threshold fits the rank and its figures are right.

The expected figures are worked out here from first principles (the smallest stack of 3-wide
convs whose field reaches a kernel, counted by adding 2 per conv; weights as a product of sizes),
not with the helpers the lints use.
"""

import math

import pytest

import cnnspec
from cnnspec.analysis.lints import RULES
from cnnspec.analysis.stats import field_sizes

RANKS = (1, 2, 3)
AXES = {1: ["position"], 2: ["row", "column"], 3: ["slice", "row", "column"]}


def d(size: int, rank: int) -> str:
    return "x".join([str(size)] * rank)


def warnings(text: str, code: str) -> list:
    network = cnnspec.loads(text, path="rank.cnn")
    return [w for w in network.warnings if w.code == code]


def only(text: str, code: str):
    found = warnings(text, code)
    assert len(found) == 1, (code, text, found)
    return found[0]


#: inputs large enough for a 100-unit dense layer over them to pass W105's 10M parameters
DENSE_INPUTS = {1: (40_000,), 2: (200, 200), 3: (40, 40, 40)}
#: a spec per rule and rank that raises it, shared by the tests below
RANK_CASES = {
    "W101": lambda r: [f"input x: 3x{d(32, r)}\nconv 16 {d(3, r)} stride=2"],
    "W102": lambda r: [f"input x: 3x{d(32, r)}\nmaxpool {d(4, r)} stride=4"],
    "W103": lambda r: [f"input x: 4x{d(16, r)}\nconv 16 {d(k, r)}" for k in (5, 7, 9)],
    "W104": lambda r: [f"input x: 3x{d(8, r)}\nconv 16 {d(3, r)} pad=1\nbn"],
    "W105": lambda r: [f"input x: 3x{'x'.join(map(str, DENSE_INPUTS[r]))}\nflatten\nlinear 100"],
    "W106": lambda r: [f"input x: 3x{d(8, r)}\n{{ conv 8 {d(3, r)}; relu }} * 3"],
    "W107": lambda r: [f"input x: 3x{d(11, r)}\nconv 8 {d(3, r)} stride=3\nconv 8 {d(3, r)}\nflatten\nlinear 10"],
    "W108": lambda r: [f"input x: 4x{d(7, r)}\nmaxpool {d(2, r)} stride=2"],
    "W109": lambda r: [f"input x: 3x{d(8, r)}\nrelu\nrelu"],
    "W110": lambda r: [f"input x: 8x{d(8, r)}\ndropout 0.5\nbn"],
    "W111": lambda r: [f"input x: 3x{d(4, r)}\nflatten\nlinear 10\nsoftmax"],
    "W112": lambda r: [f"input x: 3x{d(8, r)}\nconv 20 {d(3, r)} pad=1"],
    "W113": lambda r: [f"input x: 3x{d(8, r)}\nblock spare() {{ conv 8 {d(3, r)} }}\nrelu"],
}


def case(code: str, rank: int) -> str:
    return RANK_CASES[code](rank)[0]


def stack_for(kernel: int, rank: int) -> tuple[int, int]:
    """The fewest stacked convs of 3 whose receptive field (1, then +2 per conv) reaches `kernel`, and
    their weights per channel pair."""
    convs, field = 0, 1
    while field < kernel:
        convs, field = convs + 1, field + 2
    return convs, convs * 3 ** rank


def test_every_rule_is_tested_here():
    tested = {name.split("_")[1].upper() for name in globals() if name.startswith("test_w")}
    assert set(RULES) | {"W190"} <= tested


@pytest.mark.parametrize("rank", RANKS)
def test_w101_names_the_axis_of_the_rank(rank):
    found = only(case("W101", rank), "W101")
    # the first axis loses (32 - 3) % 2 = 1 position
    assert found.message.startswith(f"stride 2 never reaches the last {AXES[rank][0]} of the 32-wide input")
    assert found.message.endswith(f"= {(32 - 3) % 2}")
    many = only(f"input x: 3x{d(11, rank)}\nconv 8 {d(3, rank)} stride=3", "W101")
    assert f"never reaches {(11 - 3) % 3} {AXES[rank][0]}s" in many.message


@pytest.mark.parametrize("rank", RANKS)
def test_w102_help_pools_at_the_rank(rank):
    found = only(case("W102", rank), "W102")
    assert found.message == f"a {d(4, rank)} pooling window discards most of what it sees"
    assert found.help.startswith(f"pool {d(2, rank)} or {d(3, rank)} (with stride 2)")
    assert not warnings(f"input x: 3x{d(32, rank)}\nmaxpool {d(3, rank)} stride=2", "W102")


W103_CASES = [(rank, k) for rank in RANKS for k in (3, 4, 5, 6, 7, 8, 9, 11, 31)]


@pytest.mark.parametrize("rank,k", W103_CASES)
def test_w103_counts_the_stack_of_small_convs(rank, k):
    size = max(k + 1, 8) if rank < 3 else k + 1
    found = warnings(f"input x: 4x{d(size, rank)}\nconv 16 {d(k, rank)}", "W103")
    convs, weights = stack_for(k, rank)
    # warned when the stack costs at most 60% of the kernel's weights: never in 1D, where n convs of 3
    # cost 3n against 2n + 1; from 7x7 in 2D; from 5x5x5 in 3D
    expected = weights <= 0.6 * k ** rank
    assert bool(found) == expected
    if rank == 1:
        assert not found
    if expected:
        assert found[0].message == (f"a {d(k, rank)} kernel costs {k ** rank} weights per channel pair; "
                                    f"{convs} stacked {d(3, rank)} convs see as far with {weights}")
        assert found[0].help.startswith(f"replace it with {convs} {d(3, rank)} convs")


def test_w103_thresholds_at_each_rank():
    assert [k for rank, k in W103_CASES if rank == 2 and warnings(
        f"input x: 4x{d(32, 2)}\nconv 16 {d(k, 2)}", "W103")] == [7, 8, 9, 11, 31]
    assert [k for k in (3, 4, 5, 7) if warnings(f"input x: 4x{d(16, 3)}\nconv 16 {d(k, 3)}", "W103")] == [5, 7]


@pytest.mark.parametrize("rank", (2, 3))
def test_w103_stack_of_a_kernel_flat_along_one_axis(rank):
    # a 7x7x1 kernel is matched by 3x3x1 convs: 3 of them, 27 weights against 49
    kernel = "x".join(["7"] * (rank - 1) + ["1"])
    small = "x".join(["3"] * (rank - 1) + ["1"])
    found = warnings(f"input x: 4x{d(16, rank)}\nconv 16 {kernel}", "W103")
    if rank == 2:
        assert not found  # a factorised 7x1 is not large
    else:
        assert found[0].message.endswith(f"3 stacked {small} convs see as far with {3 * 9}")


@pytest.mark.parametrize("rank", RANKS)
def test_w103_the_suggested_stack_sees_as_far(rank):
    k = 9
    convs, _ = stack_for(k, rank)
    stacked = cnnspec.loads(f"input x: 4x{d(32, rank)}\n{{ conv 16 {d(3, rank)}; relu }} * {convs}")
    assert list(field_sizes(stacked.rows[-1].rf)) == [1 + 2 * convs] * rank
    assert 1 + 2 * convs >= k


@pytest.mark.parametrize("rank", RANKS)
def test_w103_depthwise_is_exempt(rank):
    assert not warnings(f"input x: 16x{d(16, rank)}\nconv 16 {d(7, rank)} depthwise", "W103")


@pytest.mark.parametrize("rank", RANKS)
def test_w104_bias_before_bn(rank):
    found = only(case("W104", rank), "W104")
    assert "cancelled by the batch norm" in found.message
    assert not warnings(f"input x: 3x{d(8, rank)}\nconv 16 {d(3, rank)} pad=1 bias=false\nbn", "W104")


@pytest.mark.parametrize("rank", RANKS)
def test_w105_dense_explosion(rank):
    features = 3 * math.prod(DENSE_INPUTS[rank])
    found = only(case("W105", rank), "W105")
    params = features * 100 + 100
    assert found.message == (f"this dense layer holds {params:,} parameters, 100% of the network "
                             f"({params * 4 / 2 ** 20:,.0f} MiB in fp32)")


@pytest.mark.parametrize("rank", RANKS)
def test_w106_shrinking_stack(rank):
    found = only(case("W106", rank), "W106")
    # 8 -> 6 -> 4 -> 2, two positions lost per unpadded 3-wide conv
    assert found.message.startswith("3 unpadded convs in a row take the map from 8 to 2")


@pytest.mark.parametrize("rank", RANKS)
def test_w107_counts_elements_of_the_rank(rank):
    found = only(case("W107", rank), "W107")
    # field 3, then + (3 - 1) * 3 after the stride
    unit = {1: "positions", 2: "pixels", 3: "voxels"}[rank]
    assert found.message == f"the output sees {d(3 + 2 * 3, rank)} {unit} of the {d(11, rank)} input"


@pytest.mark.parametrize("rank", RANKS)
def test_w108_names_the_odd_axes(rank):
    found = only(case("W108", rank), "W108")
    names = AXES[rank]
    listed = names[0] if rank == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
    assert found.message == f"the {d(7, rank)} map is odd: pooling it by {d(2, rank)} drops its last {listed}"
    sizes = "x".join(["8"] * (rank - 1) + ["7"])
    last = only(f"input x: 4x{sizes}\nmaxpool {d(2, rank)} stride=2", "W108")
    assert last.message.endswith(f"drops its last {names[-1]}")
    assert not warnings(f"input x: 4x{d(8, rank)}\nmaxpool {d(2, rank)} stride=2", "W108")


@pytest.mark.parametrize("rank", RANKS)
def test_w109_double_activation(rank):
    found = only(f"input x: 3x{d(8, rank)}\nconv 8 {d(3, rank)} pad=1\nrelu\nrelu", "W109")
    assert found.message.startswith("`relu` right after `relu`")


@pytest.mark.parametrize("rank", RANKS)
def test_w110_dropout_before_bn(rank):
    only(case("W110", rank), "W110")


@pytest.mark.parametrize("rank", RANKS)
def test_w111_softmax_last(rank):
    only(case("W111", rank), "W111")


@pytest.mark.parametrize("rank", RANKS)
def test_w112_channels(rank):
    found = only(case("W112", rank), "W112")
    assert found.help == "use 24 or 16"


@pytest.mark.parametrize("rank", RANKS)
def test_w113_unused_block(rank):
    found = only(case("W113", rank), "W113")
    assert found.message == "block `spare` is defined but never used"


@pytest.mark.parametrize("rank", RANKS)
def test_w190_suppression_without_reason(rank):
    text = f"input x: 3x{d(8, rank)}\nconv 16 {d(3, rank)} pad=1  # cnnspec: ignore[W104]\nbn"
    assert warnings(text, "W190") and not warnings(text, "W104")


@pytest.mark.parametrize("code", sorted(RULES))
def test_no_message_names_a_two_dimensional_kernel_in_other_ranks(code):
    """Run every rule's 1D and 3D cases above and hold each message and help free of `2x2`/`3x3`
    unless the rank writes it so (3D's `3x3x3` contains `3x3`; its parts are checked whole)."""
    import re

    for rank in (1, 3):
        for text in RANK_CASES[code](rank):
            for w in warnings(text, code):
                for part in (w.message, w.help or ""):
                    for written in re.findall(r"\b\d+(?:x\d+)+\b", part):
                        assert written.count("x") == rank - 1, (code, rank, part)
