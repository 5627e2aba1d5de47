"""Fault injection through the command line: every failure is exit 2, one line naming the file,
and nothing under the final names that looks complete.

Full disks run on a 1 MiB tmpfs when the test may mount one (root), else through an injected
ENOSPC on the project's own write path. Locks are held by a separate process, so "another run
is writing here" is tested without racing two slow runs against each other.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rasterio
import torch

from spectraseg.cli.main import main
from spectraseg.config import Config
from spectraseg.io.atomic import temporary_sibling
from spectraseg.io.lock import LOCK_NAME
from spectraseg.sample import generate_sample

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("sample"), scenes=1, size=32, seed=3)


@pytest.fixture(scope="module")
def model(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-forest run folder: trained in well under a second."""
    run = tmp_path_factory.mktemp("runs") / "forest"
    args = ["-q", "train", "--data", str(sample), "--out", str(run)]
    args += ["--set", "model.name=random-forest", "--set", "model.random_forest.trees=2"]
    args += ["--set", "model.random_forest.max_pixels=500"]
    assert main(args) == 0
    return run


def scene(sample: Path) -> Path:
    return next((sample / "images").iterdir())


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single error line on stderr (log lines of other levels are allowed around it)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert not [line for line in err.splitlines() if line.startswith("ERROR")], err  # GDAL's
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]


def assert_nothing_complete(folder: Path, *names: str) -> None:
    for name in names:
        assert not (folder / name).exists(), f"{name} looks complete after a failure"
    if folder.is_dir():
        assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]


@contextlib.contextmanager
def lock_held_elsewhere(folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holds `folder`'s lock for the block, then is killed with SIGKILL."""
    code = (
        "import sys, time\n"
        "from spectraseg.io.lock import acquire\n"
        "from pathlib import Path\n"
        "acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    try:
        yield holder
    finally:
        holder.kill()
        holder.wait()


# --- bad inputs: one line, exit 2, the file named ----------------------------------------


def _evil_checkpoint(path: Path) -> Path:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("true",))

    torch.save({"payload": Evil()}, path)
    return path


CASES = {
    "missing raster": lambda t, s, m: (["info", str(t / "missing.tif")], "missing.tif"),
    "empty raster": lambda t, s, m: (
        ["info", str(_write(t / "empty.tif", b""))],
        "empty.tif",
    ),
    "foreign file": lambda t, s, m: (
        ["info", str(_write(t / "notes.tif", b"just some text\n"))],
        "notes.tif",
    ),
    "truncated raster": lambda t, s, m: (
        ["predict", str(m), str(_truncated(scene(s), t / "cut.tif")), "--out", str(t / "out")],
        "cut.tif",
    ),
    "unsafe checkpoint": lambda t, s, m: (
        ["predict", str(_evil_checkpoint(t / "evil.pt")), str(scene(s)), "--out", str(t / "out")],
        "evil.pt",
    ),
    "unsafe YAML": lambda t, s, m: (
        [
            "train",
            "--config",
            str(_write(t / "evil.yaml", b"model: !!python/object/apply:os.system [true]\n")),
            "--data",
            str(s),
            "--out",
            str(t / "out"),
        ],
        "evil.yaml",
    ),
    "config error": lambda t, s, m: (
        ["train", "--data", str(s), "--out", str(t / "out"), "--set", "train.epochs=-3"],
        "train.epochs",
    ),
    "output is a folder": lambda t, s, m: (
        [
            "vectorize",
            str(_predicted(m, s, t)),
            "--out",
            str(_folder(t / "out.gpkg")),
            "--overwrite",
        ],
        "out.gpkg",
    ),
    "truncated raster to vectorize": lambda t, s, m: (
        [
            "vectorize",
            str(_truncated(_predicted(m, s, t), t / "cut_probs.tif")),
            "--out",
            str(t / "out" / "cut.geojson"),
        ],
        "cut_probs.tif",
    ),
    "plain image to vectorize": lambda t, s, m: (
        ["vectorize", str(scene(s)), "--out", str(t / "out" / "scene.geojson")],
        scene(s).name,
    ),
    "probabilities outside [0, 1]": lambda t, s, m: (
        [
            "vectorize",
            str(_scaled(_predicted(m, s, t), t / "x_probs.tif", 3.0)),
            "--out",
            str(t / "out" / "x.geojson"),
        ],
        "x_probs.tif",
    ),
    "label polygon beyond any CRS": lambda t, s, m: (
        ["train", "--data", str(_with_labels(s, t / "data", _far_vertex)), "--out", str(t / "out")],
        "scene_000.geojson",
    ),
    "label polygon that cannot be repaired": lambda t, s, m: (
        [
            "evaluate",
            "--pred",
            str(s / "masks"),
            "--truth",
            str(_with_labels(s, t / "data", _one_point_ring) / "labels"),
            "--classes",
            str(s / "classes.yaml"),
            "--out",
            str(t / "out"),
        ],
        "scene_000.geojson",
    ),
    "scenes with different band counts": lambda t, s, m: (
        ["train", "--data", str(_with_a_five_band_scene(s, t / "data")), "--out", str(t / "out")],
        "scene_001.tif",
    ),
    "window too large for memory": lambda t, s, m: (
        ["predict", str(m), str(scene(s)), "--out", str(t / "out"), "--window", "100000"],
        scene(s).name,
    ),
}


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    return _write(path, data[: len(data) // 2])


def _predicted(model: Path, sample: Path, tmp: Path) -> Path:
    assert main(["-q", "predict", str(model), str(scene(sample)), "--out", str(tmp / "pred")]) == 0
    return next((tmp / "pred").glob("*_probs.tif"))


def _scaled(source: Path, path: Path, factor: float) -> Path:
    """A copy of a probability raster, tags and all, with its values multiplied."""
    with rasterio.open(source) as dataset:
        profile, tags, data = dataset.profile, dataset.tags(), dataset.read()
    with rasterio.open(path, "w", **profile) as out:
        out.update_tags(**tags)
        out.write(data * factor)
    return path


def _with_labels(sample: Path, data: Path, edit: Callable[[list[Any]], None]) -> Path:
    """A copy of the sample data folder, labels only (no masks), one polygon's ring edited."""
    shutil.copytree(sample, data, ignore=shutil.ignore_patterns("masks"))
    labels = data / "labels" / "scene_000.geojson"
    document = json.loads(labels.read_text())
    edit(document["features"][1]["geometry"]["coordinates"])
    labels.write_text(json.dumps(document))
    return data


def _far_vertex(rings: list[Any]) -> None:
    rings[0][1] = [1e300, 1e300]


def _one_point_ring(rings: list[Any]) -> None:
    rings[0] = rings[0][:1]


def _two_point_ring(rings: list[Any]) -> None:
    rings[0] = rings[0][:2]


def _unclosed_ring(rings: list[Any]) -> None:
    rings[0] = rings[0][:-1]


def _with_a_five_band_scene(sample: Path, data: Path) -> Path:
    """The sample plus a second scene, a copy of the first with only 5 of its 8 bands."""
    shutil.copytree(sample, data)
    with rasterio.open(scene(sample)) as dataset:
        profile, pixels = dataset.profile, dataset.read()
    with rasterio.open(data / "images" / "scene_001.tif", "w", **{**profile, "count": 5}) as out:
        out.write(pixels[:5])
    for folder, suffix in (("labels", ".geojson"), ("masks", ".tif")):
        shutil.copy(data / folder / f"scene_000{suffix}", data / folder / f"scene_001{suffix}")
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_one_line_naming_the_file(
    case: str, sample: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, named = CASES[case](tmp_path, sample, model)
    capsys.readouterr()
    assert main(args) == 2
    line = one_line(capsys)
    assert named in line
    assert "weights_only" not in line
    out = tmp_path / "out"
    assert not out.exists() or not list(out.iterdir()), list(out.iterdir())


def test_a_usage_error_is_one_line_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--window", "huge"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--help" in err and "usage:" not in err


# --- full disks and read-only folders ----------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs filled to the last block; skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here; the injected-ENOSPC test covers this")
    try:
        with contextlib.suppress(OSError), (mount / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _full_disk_commands(sample: Path, model: Path, out: Path) -> dict[str, list[str]]:
    return {
        "predict": ["predict", str(model), str(scene(sample)), "--out", str(out)],
        "sample": ["sample", str(out / "sample"), "--scenes", "1", "--size", "32"],
        "evaluate": [
            "evaluate",
            "--pred",
            str(sample / "masks"),
            "--truth",
            str(sample / "labels"),
            "--classes",
            str(sample / "classes.yaml"),
            "--out",
            str(out),
        ],
    }


@pytest.mark.parametrize("verb", ["predict", "sample", "evaluate"])
def test_a_full_disk_is_one_line_and_leaves_nothing(
    verb: str, sample: Path, model: Path, small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small_fs / "out"
    capsys.readouterr()
    assert main(["-q", *_full_disk_commands(sample, model, out)[verb]]) == 2
    line = one_line(capsys)
    assert str(small_fs) in line or "full" in line or "space" in line, line
    assert_nothing_complete(out, "scores.json", "scores.csv")
    if out.is_dir():
        assert not list(out.glob("*.tif")) and not (out / LOCK_NAME).exists()


def test_an_injected_enospc_on_the_write_path_is_one_line(
    sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_write_text = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        if self.name.endswith(".partial") and "scores.csv" in self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "scores"
    args = _full_disk_commands(sample, tmp_path, out)["evaluate"]
    assert main(["-q", *args]) == 2
    line = one_line(capsys)
    assert "scores.csv" in line and "disk is full" in line
    # scores.json was written first, yet is not left without its scores.csv.
    assert_nothing_complete(out, "scores.json", "scores.csv")
    monkeypatch.undo()
    assert main(["-q", *args]) == 0  # no --overwrite needed: nothing complete was there


def test_a_read_only_output_folder_is_one_line(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        assert main(["-q", "train", "--data", str(sample), "--out", str(mount / "run")]) == 2
        assert str(mount) in one_line(capsys)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# --- locks, kills and leftovers ----------------------------------------------------------


def test_a_second_predict_into_a_locked_folder_exits_2_naming_the_holder(
    sample: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pred"
    args = ["-q", "predict", str(model), str(scene(sample)), "--out", str(out)]
    with lock_held_elsewhere(out) as holder:
        assert main(args) == 2
        line = one_line(capsys)
        assert f"pid {holder.pid}" in line and LOCK_NAME in line
        assert not list(out.glob("*.tif"))
    # The holder was killed: its lock is stale, taken over with a warning, and the run succeeds.
    assert main(args) == 0
    assert "taking over the lock" in capsys.readouterr().err
    assert len(list(out.glob("*.tif"))) == 3 and not (out / LOCK_NAME).exists()  # + class map


def test_train_resume_on_a_folder_being_trained_exits_2(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(Config().to_yaml())
    (run / "last.pt").write_bytes(b"written by the other trainer")
    with lock_held_elsewhere(run):
        assert main(["-q", "train", "--resume", "--data", str(sample), "--out", str(run)]) == 2
        assert "another spectraseg run" in one_line(capsys)
    assert (run / "last.pt").read_bytes() == b"written by the other trainer"


def test_sigkill_during_evaluate_then_a_rerun_without_overwrite_succeeds(
    sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    args = _full_disk_commands(sample, tmp_path, out)["evaluate"]
    env = {**os.environ, "PYTHONPATH": SRC}
    victim = subprocess.Popen(
        [sys.executable, "-m", "spectraseg", "-q", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (out / LOCK_NAME).exists() and victim.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert main(["-q", *args]) == 0
    assert json.loads((out / "scores.json").read_text())["mean_jaccard"] == pytest.approx(1.0)
    assert (out / "scores.csv").exists() and not (out / LOCK_NAME).exists()


def test_a_kill_between_the_renames_of_a_set_is_undone_by_the_next_run(
    sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    code = (
        "import os, signal, sys\n"
        "from spectraseg.io.atomic import atomic_set\n"
        "real = os.replace\n"
        "def replace_then_die(a, b):\n"
        "    real(a, b); os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.replace = replace_then_die\n"
        "out = sys.argv[1]\n"
        "with atomic_set([out + '/scores.json', out + '/scores.csv']) as (j, c):\n"
        "    j.write_text('{}'); c.write_text('')\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=False)
    assert done.returncode == -signal.SIGKILL
    assert (out / "scores.json").exists() and not (out / "scores.csv").exists()
    args = _full_disk_commands(sample, tmp_path, out)["evaluate"]
    assert main(["-q", *args]) == 0
    assert json.loads((out / "scores.json").read_text())["mean_jaccard"] == pytest.approx(1.0)
    assert (out / "scores.csv").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_killed_runs_partial_files_are_gone_after_the_next_run(
    sample: Path, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    leftovers = [
        out / f".scene_probs.tif.{dead}-0123abcd.partial",
        out / ".curves.png.89abcdef.partial",  # an older version's name, without a pid
    ]
    for leftover in leftovers:
        leftover.write_bytes(b"half a file")
    alive = temporary_sibling(out / "other.tif")  # a live writer's file is left alone
    alive.write_bytes(b"being written")
    assert main(["-q", "predict", str(model), str(scene(sample)), "--out", str(out)]) == 0
    assert not any(leftover.exists() for leftover in leftovers)
    assert alive.exists()


# --- inputs that used to give silent wrong results -----------------------------------------


def test_invalid_label_polygons_are_repaired_with_one_warning_counting_them(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _with_labels(sample, tmp_path / "data", _two_point_ring)
    labels = data / "labels" / "scene_000.geojson"
    document = json.loads(labels.read_text())
    _unclosed_ring(document["features"][2]["geometry"]["coordinates"])
    labels.write_text(json.dumps(document))
    capsys.readouterr()
    evaluate = ["-q", "evaluate", "--pred", str(sample / "masks"), "--truth", str(data / "labels")]
    evaluate += ["--classes", str(sample / "classes.yaml"), "--out", str(tmp_path / "scores")]
    assert main(evaluate) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "make_valid" in line]
    assert len(warned) == 1 and "2 invalid polygon(s)" in warned[0], warned
    train = ["-q", "train", "--data", str(data), "--out", str(tmp_path / "run")]
    train += ["--set", "model.name=random-forest", "--set", "model.random_forest.trees=2"]
    assert main(train) == 0
    assert "2 invalid polygon(s)" in capsys.readouterr().err


def test_a_failed_training_leaves_nothing_so_the_rerun_needs_no_overwrite(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    train = ["-q", "train", "--out", str(run), "--set", "model.name=random-forest"]
    train += ["--set", "model.random_forest.trees=2"]
    assert main([*train, "--data", str(_with_labels(sample, tmp_path / "bad", _far_vertex))]) == 2
    assert "scene_000.geojson" in one_line(capsys)
    assert not run.exists()
    assert main([*train, "--data", str(sample)]) == 0
    assert (run / "best.pt").is_file()


def test_train_log_keeps_its_record_under_quiet(model: Path) -> None:
    assert "training random-forest" in (model / "train.log").read_text()


def test_info_on_an_all_nodata_raster_says_so(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rasterio.open(scene(sample)) as dataset:
        profile = {**dataset.profile, "nodata": 0}
        empty = dataset.read() * 0
    with rasterio.open(tmp_path / "empty.tif", "w", **profile) as out:
        out.write(empty)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "empty.tif")]) == 0
    printed = capsys.readouterr().out
    assert "every pixel is nodata" in printed and "mean" not in printed
    assert main(["info", "--json", str(tmp_path / "empty.tif")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["all_nodata"] and summary["bands"][0]["mean"] is None


def test_a_float_truth_rasters_nodata_value_is_ignored_not_a_class(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = tmp_path / "truth"
    truth.mkdir()
    with rasterio.open(sample / "masks" / "scene_000.tif") as dataset:
        profile, ids = dataset.profile, dataset.read().astype("float32")
    ids[:, :8, :] = -99999  # the top rows are not labelled
    with rasterio.open(truth / "scene_000.tif", "w", **{**profile, "dtype": "float32",
                                                         "nodata": -99999}) as out:  # fmt: skip
        out.write(ids)
    args = ["-q", "evaluate", "--pred", str(sample / "masks"), "--truth", str(truth)]
    args += ["--classes", str(sample / "classes.yaml"), "--out", str(tmp_path / "scores")]
    assert main(args) == 0, capsys.readouterr().err
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert scores["mean_jaccard"] == pytest.approx(1.0)  # the ignored rows count nowhere


def test_a_mask_covering_part_of_its_scene_leaves_the_rest_ignored(
    sample: Path, tmp_path: Path
) -> None:
    from spectraseg.io.classes_file import load_classes
    from spectraseg.io.masks import read_mask
    from spectraseg.io.rasters import grid_of

    with rasterio.open(sample / "masks" / "scene_000.tif") as dataset:
        profile, ids, grid = dataset.profile, dataset.read(), grid_of(dataset)
    half = {**profile, "width": 16, "tiled": False}
    for key in ("blockxsize", "blockysize"):
        half.pop(key, None)
    with rasterio.open(tmp_path / "left.tif", "w", **half) as out:  # the left half only
        out.write(ids[:, :, :16])
    mask, ignore = read_mask(tmp_path / "left.tif", load_classes(sample / "classes.yaml"), grid)
    assert ignore[:, 16:].all() and not ignore[:, :16].any()
    assert not mask[:, :, 16:].any()


# --- full disks beyond evaluate: train, vectorize --------------------------------------------


@pytest.mark.parametrize("name", ["polygons.geojson", "polygons.gpkg"])
def test_vectorize_onto_a_full_disk_is_one_line_and_leaves_nothing(
    name: str,
    sample: Path,
    model: Path,
    tmp_path: Path,
    small_fs: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    probs = _predicted(model, sample, tmp_path)
    capsys.readouterr()
    assert main(["-q", "vectorize", str(probs), "--out", str(small_fs / name)]) == 2
    line = one_line(capsys)
    assert name in line and "disk is full" in line, line
    assert [p.name for p in small_fs.iterdir()] == ["filler"]


def test_train_onto_a_full_disk_is_one_line_and_leaves_nothing(
    sample: Path, small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = small_fs / "run"
    args = ["-q", "train", "--data", str(sample), "--out", str(run)]
    assert main([*args, "--set", "model.name=random-forest"]) == 2
    assert str(run) in one_line(capsys)
    assert not run.exists()


def test_an_injected_enospc_while_saving_a_checkpoint_names_it(
    sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def full(document: object, path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # torch names no file

    monkeypatch.setattr(torch, "save", full)
    run = tmp_path / "run"
    args = ["-q", "train", "--data", str(sample), "--out", str(run)]
    assert main([*args, "--set", "model.name=random-forest"]) == 2
    line = one_line(capsys)
    assert "best.pt" in line and "disk is full" in line, line
    assert not run.exists()
    monkeypatch.undo()
    assert main([*args, "--set", "model.name=random-forest"]) == 0  # no --overwrite needed


def test_a_geopackage_without_its_spatial_index_is_not_written(
    sample: Path,
    model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GDAL builds the index when the file closes and only logs a failure (a full disk)."""
    import sqlite3

    from spectraseg.io import vectors

    real_write = vectors.ogr_write

    def write_then_lose_the_index(path: str, *args: object, **kwargs: object) -> None:
        real_write(path, *args, **kwargs)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute(f'DROP TABLE "rtree_{Path(path).stem}_geom"')
            db.commit()

    probs = _predicted(model, sample, tmp_path)
    monkeypatch.setattr(vectors, "ogr_write", write_then_lose_the_index)
    capsys.readouterr()
    assert main(["-q", "vectorize", str(probs), "--out", str(tmp_path / "out.gpkg")]) == 2
    assert "out.gpkg" in (line := one_line(capsys)) and "spatial index" in line
    assert not (tmp_path / "out.gpkg").exists()
    monkeypatch.undo()
    assert main(["-q", "vectorize", str(probs), "--out", str(tmp_path / "out.gpkg")]) == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "out.gpkg")) as db:
        assert db.execute('SELECT count(*) FROM "rtree_out_geom"').fetchone()[0] > 0


def test_a_sample_cut_short_by_a_full_disk_is_finished_without_overwrite(
    small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["-q", "sample", str(small_fs / "sample"), "--scenes", "1", "--size", "32"]
    assert main(args) == 2
    assert "disk is full" in one_line(capsys)
    assert not (small_fs / "sample" / "classes.yaml").exists()
    (small_fs / "filler").unlink()  # space freed
    assert main(args) == 0
    assert (small_fs / "sample" / "classes.yaml").is_file()
    assert not [p for p in (small_fs / "sample").iterdir() if p.name.startswith(".")]
    assert main(args) == 2  # a finished sample is only replaced with --overwrite
    assert "--overwrite" in one_line(capsys)


def test_two_concurrent_predicts_into_one_folder_one_succeeds_the_other_exits_2(
    sample: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first predict holds the folder (it waits inside its lock until told to go on)."""
    out, go = tmp_path / "pred", tmp_path / "go"
    args = ["-q", "predict", str(model), str(scene(sample)), "--out", str(out)]
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from spectraseg.cli.commands import predict\n"
        "from spectraseg.cli.main import main\n"
        "real = predict._predict\n"
        "def held(args):\n"
        "    print('locked', flush=True)\n"
        "    while not Path(sys.argv[1]).exists():\n"
        "        time.sleep(0.01)\n"
        "    return real(args)\n"
        "predict._predict = held\n"
        "sys.exit(main(sys.argv[2:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    first = subprocess.Popen(
        [sys.executable, "-c", code, str(go), *args], stdout=subprocess.PIPE, env=env
    )
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == b"locked"
        assert main(args) == 2
        line = one_line(capsys)
        assert f"pid {first.pid}" in line and LOCK_NAME in line
    finally:
        go.touch()
        assert first.wait(timeout=120) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "scene_000_classes.qml",
        "scene_000_classes.tif",
        "scene_000_mask.tif",
        "scene_000_probs.tif",
    ]


@pytest.mark.parametrize("verb", ["sample", "run", "demo"])
def test_sample_run_and_demo_into_a_locked_folder_exit_2_naming_the_holder(
    verb: str, sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(f"run:\n  data: {sample}\n  out: {out}\n")
    args = {
        "sample": ["sample", str(out), "--scenes", "1", "--size", "32"],
        "run": ["run", str(config)],
        "demo": ["demo", "--out", str(out)],
    }[verb]
    with lock_held_elsewhere(out) as holder:
        capsys.readouterr()
        assert main(["-q", *args]) == 2
        assert f"pid {holder.pid}" in one_line(capsys)
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]


def test_a_killed_vectorize_leaves_a_staging_folder_the_next_one_removes(
    sample: Path, model: Path, tmp_path: Path
) -> None:
    probs = _predicted(model, sample, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    staging = tmp_path / f".out.gpkg.{dead}-0123abcd.partial"
    staging.mkdir()
    (staging / "out.gpkg").write_bytes(b"half a GeoPackage")
    other = tmp_path / f".other.tif.{dead}-89abcdef.partial"  # another output's: not ours
    other.write_bytes(b"half a raster")
    assert main(["-q", "vectorize", str(probs), "--out", str(tmp_path / "out.gpkg")]) == 0
    assert not staging.exists() and other.exists()
