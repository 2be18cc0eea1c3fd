"""Equal layers share their validated parameters and their figures (`cnnspec.analysis.figures`):
values Python holds equal but the language does not are kept apart."""

import math

import pytest

import cnnspec
from cnnspec.diagnostics import SpecError


def layers(text: str):
    return list(cnnspec.loads(text).graph.layers())


def test_equal_layers_share_one_parameters_object_and_keep_their_own_nodes():
    found = layers("input x: 8x16x16\nconv 8 3x3 pad=1\nrelu\nconv 8 3x3 pad=1\nrelu\n")
    assert found[0].params is found[2].params
    assert found[0].id != found[2].id and found[0].path != found[2].path


def test_a_boolean_is_not_taken_for_the_number_it_equals():
    # `True == 1` in Python: the second layer's `bias=1` must still be refused as a number
    with pytest.raises(SpecError) as error:
        cnnspec.loads("input x: 16\nlinear 8 bias=true\nlinear 8 bias=1\n")
    [diagnostic] = error.value.diagnostics
    assert diagnostic.span.line == 3 and "bias" in diagnostic.message


def test_negative_zero_keeps_its_sign_beside_zero():
    first, second = layers("input x: 8x4x4\nleaky_relu slope=0.0\nleaky_relu slope=-0.0\n")
    assert math.copysign(1, first.params.slope) == 1 and math.copysign(1, second.params.slope) == -1


def test_a_layer_on_another_input_shape_has_its_own_figures():
    network = cnnspec.loads("input x: 3x32x32\nconv 3 3x3\nconv 3 3x3\n")
    shapes = [row.out_shape for row in network.rows]
    assert shapes[:2] == [(3, 30, 30), (3, 28, 28)]
