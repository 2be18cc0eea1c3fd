"""The output-size, parameter and MAC formulas: hand-computed cases, the course's examples,
and PyTorch's own layers as the independent reference."""

import itertools

import pytest

import cnnspec
from cnnspec.layers.formulas import same_padding, transposed_output_size, window_output_size


def test_seven_by_seven_input_three_by_three_kernel_stride_two():
    assert cnnspec.loads("input x: 1x7x7\nconv 1 3x3 stride=2").output_shape == (1, 3, 3)


def test_thirty_two_shrinks_to_four_after_seven_unpadded_five_by_five_convs():
    net = cnnspec.loads("input x: 1x32x32\nblock c5 { conv 1 5x5 }\nc5 * 7")
    assert [r.out_shape[1:] for r in net.rows] == [(n, n) for n in (28, 24, 20, 16, 12, 8, 4)]


def test_hundred_in_hundred_out_five_by_five_on_a_64x64_output_is_a_billion_macs():
    net = cnnspec.loads("input x: 100x64x64\nconv 100 5x5 pad=2")
    assert net.output_shape == (100, 64, 64)
    assert net.macs == 1_024_000_000


def test_dense_layer_over_a_36m_element_image_holds_3_6_billion_weights():
    net = cnnspec.loads("input x: 3x2000x6000\nflatten\nlinear 100")
    assert net.params == 3_600_000_000 + 100
    assert net.macs == 3_600_000_000


def test_parameter_counts():
    net = cnnspec.loads("input x: 32x16x16\nconv 64 3x3 groups=4 bias=false\nbn\nconv 64 3x3 depthwise\n"
                        "flatten\nlinear 10 bias=false")
    conv, bn, dw, _, fc = net.rows
    assert conv.params == 64 * (32 // 4) * 9
    assert (bn.params, bn.buffers) == (128, 128)
    assert dw.params == 64 * 1 * 9 + 64
    assert fc.params == 64 * 12 * 12 * 10


def test_transposed_conv_macs_count_input_elements():
    net = cnnspec.loads("input x: 100x1x1\ndeconv 512 4x4 bias=false")
    assert net.output_shape == (512, 4, 4)
    assert net.macs == 100 * 512 * 16 * 1


def test_same_padding_puts_the_extra_pixel_at_the_end():
    assert same_padding(224, 4) == (1, 2)
    net = cnnspec.loads("input x: 3x224x224\nconv 8 4x4 pad=same")
    assert net.output_shape == (8, 224, 224)
    assert [d.code for d in net.warnings] == ["W001"]
    assert cnnspec.loads("input x: 3x225x225\nconv 8 3x3 stride=2 pad=same").output_shape == (8, 113, 113)


def test_adaptive_and_global_pooling():
    assert cnnspec.loads("input x: 8x13x17\navgpool adaptive 5x3").output_shape == (8, 5, 3)
    assert cnnspec.loads("input x: 8x13x17\nmaxpool global").output_shape == (8, 1, 1)


def test_one_and_three_dimensional_convolutions():
    assert cnnspec.loads("input x: 4x100\nconv 8 5 stride=2").output_shape == (8, 48)
    assert cnnspec.loads("input x: 4x8x32x32\nconv 8 3x3x3 pad=1\nmaxpool 2").output_shape == (8, 4, 16, 16)


def test_concat_crop_and_scale_broadcast():
    net = cnnspec.loads("input x: 8x20x20\nconcat crop { identity; { conv 4 3x3 } }")
    assert net.output_shape == (12, 18, 18)
    net = cnnspec.loads("input x: 8x20x20\nscale { avgpool global; conv 2 1x1; relu; conv in.c 1x1; sigmoid }")
    assert net.output_shape == (8, 20, 20)
    assert net.params == (8 * 2 + 2) + (2 * 8 + 8)


@pytest.fixture(scope="module")
def torch():
    # per test, so that the formula tests above still run where torch is not installed
    return pytest.importorskip("torch", reason="the formulas are compared with PyTorch's layers")


@pytest.mark.parametrize("n,k,s,p,d,ceil", [
    case for case in itertools.product([5, 6, 7, 12, 13], [1, 2, 3], [1, 2, 3], [0, 1], [1, 2], [False, True])
    if case[3] * 2 <= case[1] and case[4] * (case[1] - 1) + 1 <= case[0] + 2 * case[3]
])
def test_window_formula_agrees_with_pytorch_max_pool(torch, n, k, s, p, d, ceil):
    x = torch.zeros(1, 1, n)
    out = torch.nn.functional.max_pool1d(x, k, s, p, d, ceil_mode=ceil)
    assert window_output_size(n, k, s, p, p, d, ceil) == out.shape[-1]


@pytest.mark.parametrize("n,k,s,p,op,d", [
    (1, 4, 1, 0, 0, 1), (4, 4, 2, 1, 0, 1), (7, 3, 2, 1, 1, 1), (5, 3, 3, 0, 2, 1), (6, 2, 2, 0, 0, 2),
])
def test_transposed_formula_agrees_with_pytorch(torch, n, k, s, p, op, d):
    layer = torch.nn.ConvTranspose1d(1, 1, k, s, p, op, dilation=d)
    assert transposed_output_size(n, k, s, p, p, d, op) == layer(torch.zeros(1, 1, n)).shape[-1]
