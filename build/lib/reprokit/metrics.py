"""Kept so that ``from reprokit.metrics import retrieval_metrics`` goes on working.

The retrieval metrics live in :mod:`reprokit.evaluate.metrics`.
"""

from reprokit.evaluate.metrics import *  # noqa: F401,F403
from reprokit.evaluate.metrics import __all__  # noqa: F401
