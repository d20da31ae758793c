"""The embedded dataset's distortions, at the edges of what the config accepts."""

import numpy as np
import pytest

from reprokit.core.config import DigitsConfig
from reprokit.data.digits import distort

SOURCE = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)


@pytest.mark.parametrize("name", ["rotation_deg", "scale", "shift", "noise"])
def test_a_distortion_of_minus_zero_is_none(name):
    # -0.0 passes `≥ 0`; numpy raised on it ("high - low < 0", "scale < 0"): hypothesis found it.
    minus_zero = distort(SOURCE, DigitsConfig(**{name: -0.0}), np.random.default_rng(0))
    zero = distort(SOURCE, DigitsConfig(**{name: 0.0}), np.random.default_rng(0))
    assert np.array_equal(minus_zero, zero)
