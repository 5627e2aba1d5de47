"""Many scenes on a Dask cluster: one task per scene, each worker loading the model once.

`spectraseg predict ... --cluster local:N|ADDRESS` calls `predict_scenes`. A task is
`predict_raster` on one scene, run on a worker that writes its outputs straight into the
output folder, so nothing but a short summary travels back. The outputs are written under a
temporary name and renamed when complete (`io/geotiff.py`), so a worker killed mid-scene
leaves only a `.partial` file that the task's retry removes; the scheduler reruns the task
elsewhere. A rerun skips scenes whose outputs are both present.

Scenes too large for one task are still one task each (a strip-per-task split is not done).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from spectraseg.errors import ConfigError, SpectrasegError
from spectraseg.io.prediction_raster import class_map_paths, output_paths
from spectraseg.predict.choices import PredictRequest
from spectraseg.predict.load_model import LoadedModel, load_model
from spectraseg.predict.raster import predict_raster
from spectraseg.predict.settings import PredictSettings

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["SceneResult", "connect", "predict_scenes", "read_input_list"]

log = logging.getLogger(__name__)

# A task whose worker dies is rerun by the scheduler (up to distributed's `allowed-failures`);
# these retries cover errors raised inside the task itself (a network file system hiccup).
TASK_RETRIES = 2

# How long to wait for a scheduler that does not answer (a wrong address, a cluster still
# queued on SLURM).
CONNECT_TIMEOUT = "30s"

Status = Literal["done", "skipped", "failed"]

_LOCAL = re.compile(r"^local(?::(?P<workers>\d+))?$")


@dataclass(frozen=True)
class SceneResult:
    """What became of one scene: done, skipped (outputs already complete) or failed (why)."""

    input: str
    stem: str
    status: Status
    message: str = ""
    seconds: float = 0.0
    worker: str = ""


def read_input_list(path: Path) -> list[Path]:
    """The inputs listed in a text file, one per line; blank lines and `#` comments skipped.

    Relative paths are taken from the list's folder, as a config's paths are from its own.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the list of inputs ({error}).") from None
    inputs = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            inputs.append(path.parent / entry)
    if not inputs:
        raise ConfigError(f"{path}: lists no inputs; write one raster path per line.")
    return inputs


@contextlib.contextmanager
def connect(cluster: str) -> Iterator[Client]:
    """A client of the cluster `cluster` names: `local:N` starts N single-threaded worker
    processes on this machine (`local` alone: one per core); anything else is a scheduler's
    address (`tcp://host:8786`), e.g. one started by dask-jobqueue on SLURM."""
    from distributed import Client, LocalCluster

    match = _LOCAL.match(cluster)
    if match is None:
        try:
            client = Client(cluster, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as error:
            raise ConfigError(
                f"--cluster {cluster}: no Dask scheduler answered there ({error}). Give "
                "local:N for workers on this machine, or a running scheduler's address."
            ) from None
        with client:
            yield client
        return
    workers = int(match.group("workers") or len(os.sched_getaffinity(0)))
    if workers < 1:
        raise ConfigError(f"--cluster {cluster}: needs at least one worker (local:1).")
    # The dashboard needs bokeh; without it distributed would only warn at every start.
    dashboard = ":0" if importlib.util.find_spec("bokeh") is not None else None
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=dashboard,
            # One core per worker for GDAL's compression too (io/geotiff.compression_threads).
            env={"GDAL_NUM_THREADS": "1"},
        ) as local,
        Client(local) as client,
    ):
        yield client


@functools.lru_cache(maxsize=2)
def _worker_model(checkpoint: str, accelerator: str) -> tuple[LoadedModel, torch.device]:
    """The model, loaded once per worker process (the cache lives as long as the worker)."""
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(accelerator)
    return load_model(checkpoint, device), device


def _complete(out: Path, stem: str, write_mask: bool) -> bool:
    probs, mask = output_paths(out, stem)
    class_map, style = class_map_paths(out, stem)
    with_mask = mask.exists() and class_map.exists() and style.exists()
    return probs.exists() and (with_mask or not write_mask)


def _predict_scene(
    checkpoint: str,
    input: str,
    out: str,
    stem: str,
    *,
    settings: PredictSettings,
    request: PredictRequest,
    accelerator: str,
    resample: bool,
    overwrite: bool,
) -> SceneResult:
    """One task: a scene predicted and written by the worker running it.

    User errors (a band layout unlike the model's, an unreadable raster) fail the scene and
    are not retried; any other exception is, by the scheduler.
    """
    from distributed import get_worker

    try:
        worker = get_worker().address
    except ValueError:  # run outside a worker (tests call it directly)
        worker = ""
    folder = Path(out)
    probs, mask = output_paths(folder, stem)
    if not overwrite and _complete(folder, stem, settings.write_mask):
        return SceneResult(input, stem, "skipped", worker=worker)
    # A worker killed between the renames left some outputs: this attempt replaces them.
    partly_written = any(p.exists() for p in (probs, mask, *class_map_paths(folder, stem)))
    started = time.perf_counter()
    try:
        model, device = _worker_model(checkpoint, accelerator)
        predict_raster(
            model,
            input,
            folder,
            settings=settings,
            request=request,
            resample=resample,
            device=device,
            overwrite=overwrite or partly_written,
            stem=stem,
        )
    except SpectrasegError as error:
        return SceneResult(input, stem, "failed", " ".join(str(error).split()), worker=worker)
    return SceneResult(input, stem, "done", seconds=time.perf_counter() - started, worker=worker)


def predict_scenes(
    client: Client,
    checkpoint: Path,
    inputs: Sequence[Path],
    out: Path,
    *,
    stems: Sequence[str],
    settings: PredictSettings,
    request: PredictRequest,
    accelerator: str = "auto",
    resample: bool = False,
    overwrite: bool = False,
) -> list[SceneResult]:
    """Predict every input on the cluster behind `client`; one result per input, in order.

    Paths are made absolute so that workers on other machines find them (they must see the
    same file system). Without `overwrite`, scenes whose outputs are complete are skipped.
    """
    from distributed import as_completed

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if client.dashboard_link:
        log.info("Dask dashboard: %s", client.dashboard_link)
    futures = {
        client.submit(
            _predict_scene,
            str(checkpoint.resolve()),
            str(path.resolve()),
            str(out),
            stem,
            settings=settings,
            request=request,
            accelerator=accelerator,
            resample=resample,
            overwrite=overwrite,
            key=f"predict-{stem}-{index}",
            retries=TASK_RETRIES,
            pure=False,
        ): index
        for index, (path, stem) in enumerate(zip(inputs, stems, strict=True))
    }
    results: list[SceneResult | None] = [None] * len(inputs)
    for future in as_completed(futures):
        index = futures[future]
        try:
            result: SceneResult = future.result()
        except Exception as error:  # a bug or a worker lost too often: that scene failed
            message = " ".join(f"{type(error).__name__}: {error}".split())
            result = SceneResult(str(inputs[index]), stems[index], "failed", message)
        results[index] = result
        _log_result(result)
    done = [result for result in results if result is not None]
    counts = {status: sum(r.status == status for r in done) for status in ("done", "skipped")}
    log.info(
        "%d scenes: %d done, %d skipped (already complete), %d failed",
        len(done),
        counts["done"],
        counts["skipped"],
        len(done) - counts["done"] - counts["skipped"],
    )
    return done


def _log_result(result: SceneResult) -> None:
    if result.status == "done":
        log.info("%s: done in %.1f s on %s", result.input, result.seconds, result.worker)
    elif result.status == "skipped":
        log.info("%s: outputs already complete, skipped", result.input)
    else:
        log.error("%s: failed: %s", result.input, result.message)
