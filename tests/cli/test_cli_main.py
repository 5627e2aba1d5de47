"""The command line: help on every verb, global options anywhere, the error policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spectraseg import __version__
from spectraseg.cli.main import discover_verbs, main


def test_every_verb_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in discover_verbs():
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
        assert "usage: spectraseg " + verb in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_global_options_work_before_and_after_the_verb(tmp_path: Path) -> None:
    assert main(["-q", "sample", str(tmp_path / "a"), "--scenes", "1", "--size", "32"]) == 0
    assert main(["sample", str(tmp_path / "a"), "--scenes", "1", "--size", "32"]) == 2
    assert (
        main(["sample", str(tmp_path / "a"), "--scenes", "1", "--size", "32", "--overwrite", "-q"])
        == 0
    )
    assert (
        main(["--overwrite", "sample", str(tmp_path / "a"), "--scenes", "1", "--size", "32"]) == 0
    )


def test_user_error_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["info", str(tmp_path / "missing.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.tif: no such file" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from spectraseg.errors import RasterError

    with pytest.raises(RasterError):
        main(["--debug", "info", str(tmp_path / "missing.tif")])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"not a raster at all", "not a raster"),
    ],
)
def test_bad_inputs_exit_2_with_the_file_named(tmp_path: Path, content, message, capsys) -> None:
    path = tmp_path / "bad.tif"
    if content is not None:
        path.write_bytes(content)
    assert main(["info", str(path)]) == 2
    assert f"bad.tif: {message}" in capsys.readouterr().err


def test_truncated_tiff_and_tiny_image_exit_2(tmp_path: Path, capsys) -> None:
    import numpy as np
    from affine import Affine

    from spectraseg.grid import Grid
    from spectraseg.io.geotiff import write_raster

    data = np.random.default_rng(0).random((2, 400, 400)).astype(np.float32)
    write_raster(tmp_path / "full.tif", data, Grid(None, Affine.identity(), 400, 400))
    raw = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 3])
    assert main(["info", str(tmp_path / "cut.tif")]) == 2
    assert "cut.tif" in capsys.readouterr().err
    write_raster(tmp_path / "tiny.tif", data[:, :1, :1], Grid(None, Affine.identity(), 1, 1))
    assert main(["info", str(tmp_path / "tiny.tif")]) == 2
    assert "at least 2 x 2" in capsys.readouterr().err


def test_sample_refuses_to_overwrite_and_leaves_the_old_files(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert main(["sample", str(out), "--scenes", "1", "--size", "32"]) == 0
    before = (out / "images" / "scene_000.tif").read_bytes()
    assert main(["sample", str(out), "--scenes", "1", "--size", "32", "--seed", "5"]) == 2
    assert (out / "images" / "scene_000.tif").read_bytes() == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]


def test_console_script_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spectraseg", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and __version__ in result.stdout


def test_help_and_version_do_not_import_the_verbs() -> None:
    """Only the chosen verb's module is imported: `--help` costs no torch or GDAL start-up."""
    code = (
        "import sys\n"
        "from spectraseg.cli.main import main\n"
        "try:\n"
        "    main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().endswith("False")
