"""A report of a training set too large for memory says so instead of exhausting the machine."""

from __future__ import annotations

import pytest

from spectraseg.data.settings import DataSettings
from spectraseg.errors import DataError
from spectraseg.report.validation import _check_fits_memory
from spectraseg.sample import generate_sample


def test_scenes_over_the_memory_budget_are_a_data_error_naming_the_way_out(tmp_path) -> None:
    data = generate_sample(tmp_path, scenes=1, size=32)
    with pytest.raises(DataError, match=r"over the .* memory budget.*spectraseg evaluate --split"):
        _check_fits_memory(DataSettings(memory_budget_gb=1e-9), data)
    _check_fits_memory(DataSettings(memory_budget_gb=1e-9, streaming="never"), data)
    _check_fits_memory(DataSettings(), data)
