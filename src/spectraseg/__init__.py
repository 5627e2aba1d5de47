"""spectraseg: semantic segmentation of multispectral satellite imagery with U-Net."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
