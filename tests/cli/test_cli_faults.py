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
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
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
    assert_nothing_complete(tmp_path / "out", "best.pt", "scores.json")


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
    assert len(list(out.glob("*.tif"))) == 2 and not (out / LOCK_NAME).exists()


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
