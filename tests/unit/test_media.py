"""reprokit.log.media: which values are images, how they are normalised, and the errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprokit.core.errors import ReprokitError
from reprokit.log.media import LogValueError, is_image_like, to_image_hwc


@pytest.mark.parametrize(
    "value, expected",
    [
        (1.0, False),
        (torch.tensor(3.0), False),
        (torch.ones(1, 1), False),  # one element: a scalar, as in Lightning
        (torch.ones(2), False),  # 1-d: never an image (rejected later as a bad scalar)
        (torch.ones(4, 5), True),
        (np.ones((3, 4, 5)), True),
        (np.ones((2, 3, 4, 5)), True),
        ("text", False),
    ],
)
def test_is_image_like(value, expected):
    assert is_image_like(value) is expected


@pytest.mark.parametrize(
    "shape, expected_hwc",
    [
        ((6, 7), (6, 7, 1)),  # HW
        ((1, 6, 7), (6, 7, 1)),  # CHW grey
        ((3, 6, 7), (6, 7, 3)),  # CHW
        ((4, 6, 7), (6, 7, 4)),  # CHW with alpha
        ((6, 7, 3), (6, 7, 3)),  # HWC
        ((6, 7, 1), (6, 7, 1)),  # HWC grey
    ],
)
def test_layouts_become_hwc(shape, expected_hwc):
    out = to_image_hwc("k", torch.zeros(shape))
    assert out.shape == expected_hwc and out.dtype == np.uint8


def test_chw_and_hwc_hold_the_same_pixels():
    chw = torch.rand(3, 5, 6, generator=torch.Generator().manual_seed(0))
    from_chw = to_image_hwc("k", chw)
    from_hwc = to_image_hwc("k", chw.permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(from_chw, from_hwc)
    assert from_chw[2, 4, 1] == int(chw[1, 2, 4].item() * 255 + 0.5)


def test_float_and_integer_scaling():
    floats = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    np.testing.assert_array_equal(to_image_hwc("k", floats)[..., 0], [[0, 128], [255, 64]])
    ints = np.array([[0, 7], [255, 100]], dtype=np.int64)
    np.testing.assert_array_equal(to_image_hwc("k", ints)[..., 0], ints)


def test_batch_becomes_a_grid_with_gaps():
    batch = torch.ones(5, 3, 4, 6)  # 5 images -> 3 columns x 2 rows, 2-pixel gaps
    out = to_image_hwc("k", batch)
    assert out.shape == (2 * 4 + 2, 3 * 6 + 2 * 2, 3)
    assert out[4:6].max() == 0 and out[:, 6:8].max() == 0  # the gaps
    assert out[6:, 16:].max() == 0  # the empty sixth cell
    assert out[:4, :6].min() == 255 and out[6:, 8:14].min() == 255  # first and fifth images


def test_tensor_on_autograd_graph_is_accepted():
    x = torch.rand(4, 4, requires_grad=True)
    assert to_image_hwc("k", x * 1.0).shape == (4, 4, 1)


@pytest.mark.parametrize(
    "value, fragments",
    [
        (torch.full((4, 4), float("nan")), ["NaN", "shape (4, 4)", "dtype float32"]),
        (np.array([[0.0, np.inf], [0.0, 0.0]]), ["infinite", "dtype float64"]),
        (np.ones((4, 4), dtype=bool), ["dtype bool"]),
        (np.ones((4, 4), dtype=np.complex64), ["dtype complex64"]),
        (np.array([[1, 2], [3, 4]], dtype=object), ["dtype object"]),
        (torch.full((4, 4), 2.0), ["[0, 1]", "2..2"]),
        (np.full((4, 4), -0.5), ["[0, 1]", "-0.5"]),
        (np.full((4, 4), 256, dtype=np.int32), ["[0, 255]", "dtype int32"]),
        (np.ones((2, 5, 4, 4)), ["NCHW", "shape (2, 5, 4, 4)"]),
        (np.ones((5, 6, 7)), ["CHW or HWC", "shape (5, 6, 7)"]),
        (np.ones((1, 2, 3, 4, 5)), ["HW, CHW, HWC or NCHW"]),
        (np.ones((1, 9)), ["not an image", "shape (1, 9)"]),
    ],
)
def test_bad_values_name_key_shape_and_dtype(value, fragments):
    with pytest.raises(LogValueError) as info:
        to_image_hwc("my/key", value)
    message = str(info.value)
    assert message.startswith("self.log('my/key', ...): got shape ")
    for fragment in fragments:
        assert fragment in message, message


def test_log_value_error_is_a_reprokit_error_and_a_value_error():
    # ReprokitError: the CLI prints it as one line; ValueError: what Lightning raises for such values.
    assert issubclass(LogValueError, ReprokitError) and issubclass(LogValueError, ValueError)
    assert LogValueError("x").one_line() == "x"
