"""Deprecated home of `train_model`, which now lives in `spectraseg.workflow.training`.

Kept for callers not yet moved (pipeline/stages.py); tests/test_layers.py lists this import as
one of the only allowed upward ones, to be removed with it.
"""

from __future__ import annotations

from spectraseg.workflow.training import train_model

__all__ = ["train_model"]
