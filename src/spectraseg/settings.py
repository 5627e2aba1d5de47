"""The base class of every stage's settings: frozen, validated, no unknown keys.

Each stage declares its own `Settings` subclass next to its code (`TilingSettings` in
`predict/tiling.py`, ...); `config.py` composes them into the YAML layout.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """Frozen pydantic model that rejects unknown keys, so typos fail at load time."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
