"""`spectraseg predict --cluster`: scenes as Dask tasks, equal to the sequential command,
surviving a killed worker, never leaving a partial output under a final name."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectraseg.cli.main import main
from spectraseg.errors import ConfigError
from spectraseg.predict.choices import PredictRequest
from spectraseg.predict.cluster import _predict_scene, read_input_list
from spectraseg.predict.settings import PredictSettings

FLAGS = ("--tta", "2", "--window", "32", "-q")
PARTIAL = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-f]{8}\.partial$")


def _predict(checkpoint: Path, inputs: list[Path], out: Path, *extra: object) -> int:
    return main(
        ["predict", str(checkpoint), *map(str, inputs), "--out", str(out), *FLAGS, *map(str, extra)]
    )


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for path in sorted(folder.glob("*.tif")):
        with rasterio.open(path) as dataset:
            arrays[path.name] = dataset.read()
    return arrays


def _assert_equal_outputs(found: Path, expected: Path) -> None:
    found_arrays, expected_arrays = _outputs(found), _outputs(expected)
    assert sorted(found_arrays) == sorted(expected_arrays)
    for name, array in expected_arrays.items():
        assert np.allclose(found_arrays[name], array, atol=1e-6, equal_nan=True), name


@pytest.mark.slow
def test_two_local_workers_write_what_the_sequential_command_writes(
    make_checkpoint, make_raster, tmp_path
):
    checkpoint = make_checkpoint()
    scenes = [make_raster(40 + 7 * k, 50, name=f"scene{k}.tif", seed=k) for k in range(3)]
    assert _predict(checkpoint, scenes, tmp_path / "sequential") == 0
    listing = tmp_path / "scenes.txt"
    listing.write_text("# the scenes\nscene0.tif\n\nscene1.tif\nscene2.tif\n")
    assert (
        _predict(
            checkpoint, [], tmp_path / "cluster", "--inputs-from", listing, "--cluster", "local:2"
        )
        == 0
    )
    _assert_equal_outputs(tmp_path / "cluster", tmp_path / "sequential")


@pytest.mark.slow
def test_a_worker_killed_mid_scene_is_replaced_and_every_scene_is_written(
    make_checkpoint, make_raster, tmp_path
):
    from distributed import LocalCluster

    checkpoint = make_checkpoint()
    # Large enough that each scene spends a while half-written under its temporary name.
    scenes = [make_raster(256, 256, name=f"scene{k}.tif", seed=k) for k in range(3)]
    out = tmp_path / "cluster"
    out.mkdir()
    killed: list[int] = []

    def kill_the_first_writer() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for entry in os.listdir(out):
                match = PARTIAL.match(entry)
                if match:
                    os.kill(int(match.group("pid")), signal.SIGKILL)
                    killed.append(int(match.group("pid")))
                    return
            time.sleep(0.005)

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        killer = threading.Thread(target=kill_the_first_writer)
        killer.start()
        assert _predict(checkpoint, scenes, out, "--cluster", cluster.scheduler_address) == 0
        killer.join()
    assert killed, "no worker was caught writing"
    assert not [name for name in os.listdir(out) if name.endswith(".partial")]
    assert _predict(checkpoint, scenes, tmp_path / "sequential") == 0
    _assert_equal_outputs(out, tmp_path / "sequential")


def _scene_task(checkpoint: Path, raster: Path, out: Path) -> str:
    result = _predict_scene(
        str(checkpoint),
        str(raster),
        str(out),
        "scene",
        settings=PredictSettings(),
        request=PredictRequest(window=32, tta=1),
        accelerator="cpu",
        resample=False,
        overwrite=False,
    )
    return result.status


def test_a_rerun_skips_a_scene_whose_outputs_are_complete(make_checkpoint, make_raster, tmp_path):
    checkpoint, raster, out = make_checkpoint(), make_raster(), tmp_path / "out"
    assert _scene_task(checkpoint, raster, out) == "done"
    written = (out / "scene_probs.tif").stat().st_mtime_ns
    assert _scene_task(checkpoint, raster, out) == "skipped"
    assert (out / "scene_probs.tif").stat().st_mtime_ns == written


def test_a_half_renamed_pair_is_written_again(make_checkpoint, make_raster, tmp_path):
    checkpoint, raster, out = make_checkpoint(), make_raster(), tmp_path / "out"
    out.mkdir()
    (out / "scene_mask.tif").write_bytes(b"left by a killed worker")
    assert _scene_task(checkpoint, raster, out) == "done"
    with rasterio.open(out / "scene_mask.tif") as dataset:
        assert dataset.count == 2


def test_a_scene_with_the_wrong_bands_fails_alone_with_its_name(
    make_checkpoint, make_raster, tmp_path
):
    raster = make_raster(band_names=("nir", "swir1", "swir2"), name="other.tif")
    result = _predict_scene(
        str(make_checkpoint()),
        str(raster),
        str(tmp_path / "out"),
        "other",
        settings=PredictSettings(),
        request=PredictRequest(),
        accelerator="cpu",
        resample=False,
        overwrite=False,
    )
    assert result.status == "failed" and "other.tif" in result.message


def test_an_input_list_skips_comments_and_reads_paths_from_its_folder(tmp_path):
    listing = tmp_path / "lists" / "scenes.txt"
    listing.parent.mkdir()
    listing.write_text("a.tif  # first\n\n# none\n/data/b.tif\n")
    assert read_input_list(listing) == [tmp_path / "lists" / "a.tif", Path("/data/b.tif")]


def test_an_empty_input_list_is_an_error_naming_it(tmp_path):
    listing = tmp_path / "scenes.txt"
    listing.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match=r"scenes\.txt"):
        read_input_list(listing)


def test_an_unreachable_scheduler_is_exit_2(
    make_checkpoint, make_raster, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("spectraseg.predict.cluster.CONNECT_TIMEOUT", "1s")
    code = _predict(
        make_checkpoint(), [make_raster()], tmp_path / "out", "--cluster", "tcp://127.0.0.1:9"
    )
    assert code == 2
    assert "--cluster tcp://127.0.0.1:9" in capsys.readouterr().err
