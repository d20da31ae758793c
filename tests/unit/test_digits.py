"""The embedded dataset's distortions, at the edges of what the config accepts."""

import numpy as np

from reprokit.core.config import DigitsConfig
from reprokit.data.digits import distort

SOURCE = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)


def test_a_noise_of_minus_zero_is_no_noise():
    # -0.0 passes `noise ≥ 0`; numpy's normal() raised "scale < 0" on it (hypothesis found it).
    minus_zero = distort(SOURCE, DigitsConfig(noise=-0.0), np.random.default_rng(0))
    zero = distort(SOURCE, DigitsConfig(noise=0.0), np.random.default_rng(0))
    assert np.array_equal(minus_zero, zero)
