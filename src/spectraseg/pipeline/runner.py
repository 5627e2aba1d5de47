"""`run_pipeline`: every stage of a run config in order, skipping what is up to date.

A rerun after a crash continues where it stopped (a training that was cut off resumes from its
`last.pt`), and a rerun after a config change redoes only the stages whose fingerprint changed:
changing a post-processing setting reruns post-processing, evaluation and the report; changing
one model's settings retrains that model only. Nothing is written when nothing changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from spectraseg.config import Config, given_keys
from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.pipeline.manifest import Manifest, fingerprint, inventory
from spectraseg.pipeline.settings import load_run_config
from spectraseg.pipeline.stages import STAGE_KINDS, RunContext, Stage, plan_stages
from spectraseg.version import __version__

__all__ = ["StageResult", "run_pipeline"]

log = logging.getLogger(__name__)

RUN_LOG = "run.log"


@dataclass(frozen=True)
class StageResult:
    """What happened to one stage in this call."""

    name: str
    ran: bool
    seconds: float
    summary: str


def _stage_kind(name: str | None, flag: str) -> int | None:
    if name is None:
        return None
    if name not in STAGE_KINDS:
        raise ConfigError(
            f"{flag} {name}: no such stage{did_you_mean(name, STAGE_KINDS)}; "
            f"stages are {', '.join(STAGE_KINDS)}."
        )
    return STAGE_KINDS.index(name)


def _check_same_data(manifest: Manifest, config: Config, overwrite: bool) -> None:
    """A run folder belongs to one data set: refuse to mix another one into it."""
    data = str(config.run.data)
    if manifest.data and manifest.data != data and not overwrite:
        raise ConfigError(
            f"{manifest.path.parent}: this run folder was made for the data in {manifest.data}, "
            f"the config names {data}. Set run.out to another folder, or pass --overwrite to "
            "start this one over."
        )


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Copy the library's log lines to `path` (appended) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("spectraseg")
    logger.addHandler(handler)
    # As under the CLI (which passes INFO on even with -q), the file keeps the INFO record when
    # Python callers left logging unconfigured (the root's WARNING would drop it).
    previous = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(previous)
        logger.removeHandler(handler)
        handler.close()


def _inputs(config: Config, manifest: Manifest) -> tuple[str, str]:
    """Fingerprints of the training files and of the test and inference files.

    The manifest's records are updated; unchanged files keep their recorded checksums.
    """
    run = config.run
    assert run.data is not None
    training = inventory([run.data], manifest.inputs)
    tests = inventory([p for p in (run.test, *run.inference) if p is not None], manifest.inputs)
    manifest.inputs = {r.path: r for r in (*training, *tests)}
    return (
        fingerprint([(r.path, r.sha256) for r in training]),
        fingerprint([(r.path, r.sha256) for r in tests]),
    )


def run_pipeline(
    config_path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    from_stage: str | None = None,
    until_stage: str | None = None,
    overwrite: bool = False,
    device: torch.device | None = None,
    progress: bool = False,
) -> list[StageResult]:
    """Run every stage of the config that is not up to date; returns what each stage did.

    Args:
        from_stage: run this kind of stage and every later one even when up to date.
        until_stage: stop after this kind of stage.
        overwrite: ignore what the run folder holds and run every stage again (inputs such as
            a demo's data folder inside it are kept).

    Raises:
        ConfigError: the config, a stage name, or a run folder made for other data.
    """
    first_forced = _stage_kind(from_stage, "--from")
    last = _stage_kind(until_stage, "--until")
    config = load_run_config(config_path, overrides)
    out = config.run.out
    assert out is not None
    manifest = Manifest.load(out, __version__)
    _check_same_data(manifest, config, overwrite)
    if overwrite:
        manifest.stages = {}
    before = manifest.path.read_bytes() if manifest.path.exists() else None
    training_inputs, test_inputs = _inputs(config, manifest)
    manifest.config = config.model_dump(mode="json")
    manifest.config_hash = fingerprint(manifest.config)
    manifest.seed = config.train.seed
    manifest.data = str(config.run.data)
    context = RunContext(
        config,
        out,
        device or torch.device("cpu"),
        progress,
        training_inputs=training_inputs,
        test_inputs=test_inputs,
        given=given_keys(config_path, overrides),
    )
    stages = plan_stages(context)
    fingerprints = _fingerprints(stages)

    def needed(stage: Stage) -> bool:
        kind = STAGE_KINDS.index(stage.kind)
        if last is not None and kind > last:
            return False
        forced = first_forced is not None and kind >= first_forced
        return forced or not manifest.is_up_to_date(stage.name, fingerprints[stage.name])

    results: list[StageResult] = []
    work = any(needed(stage) for stage in stages)
    with _logging_to(out / RUN_LOG) if work else contextlib.nullcontext():
        for stage in stages:
            if last is not None and STAGE_KINDS.index(stage.kind) > last:
                break
            if needed(stage):
                results.append(_run_stage(stage, fingerprints[stage.name], context, manifest))
                continue
            summary = manifest.stages[stage.name].summary
            log.info("%-24s up to date (%s)", stage.name, summary)
            results.append(StageResult(stage.name, False, 0.0, summary))
    manifest.save_if_changed(before)
    return results


def _fingerprints(stages: list[Stage]) -> dict[str, str]:
    """Each stage's fingerprint: its settings and the fingerprints of the stages it reads."""
    fingerprints: dict[str, str] = {}
    for stage in stages:
        upstream = [fingerprints[name] for name in stage.after]
        fingerprints[stage.name] = fingerprint(stage.name, stage.depends, upstream)
    return fingerprints


def _run_stage(
    stage: Stage, stage_fingerprint: str, context: RunContext, manifest: Manifest
) -> StageResult:
    previous = manifest.stages.get(stage.name)
    context.resuming = (
        previous is not None
        and previous.fingerprint == stage_fingerprint
        and previous.status in ("running", "failed")
    )
    log.info("%-24s running", stage.name)
    manifest.start(stage.name, stage_fingerprint)
    started = time.monotonic()
    try:
        outputs, summary = stage.action(context)
    except BaseException as error:
        manifest.fail(stage.name, time.monotonic() - started, error)
        log.error("%-24s failed: %s", stage.name, error)
        raise
    seconds = time.monotonic() - started
    manifest.finish(stage.name, seconds, outputs, summary)
    log.info("%-24s done in %.1f s: %s", stage.name, seconds, summary)
    return StageResult(stage.name, True, seconds, summary)
