"""`--workers N`: N local worker processes on one study, the machine's cores split among them.

Each worker is a fresh (spawned) Python process running `run_worker` against the same storage,
so a worker that dies takes only its own trial with it: the others go on, and its trial is
failed and retried once its heartbeat is older than the grace period.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from typing import Any

import optuna

from spectraseg.search.study import SearchJob, run_worker
from spectraseg.train.fit import cpu_count

__all__ = ["run_workers", "split_threads"]

log = logging.getLogger(__name__)


def split_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker: the cores shared out, at least one each.

    Example:
        >>> split_threads(2, cores=16), split_threads(4, cores=2)
        (8, 1)
    """
    return max(1, (cores or cpu_count()) // workers)


def _console_level() -> int:
    """The level this process shows on its console (the CLI's -q/-v), for the workers."""
    root = logging.getLogger()
    levels = [h.level for h in root.handlers if h.level] or [root.getEffectiveLevel()]
    return max(levels)


def _worker_main(job: SearchJob, index: int, level: int) -> None:
    logging.basicConfig(
        level=level, format=f"%(levelname)s: worker {index}: %(message)s", force=True
    )
    optuna.logging.set_verbosity(
        optuna.logging.WARNING if level > logging.INFO else optuna.logging.INFO
    )
    ran = run_worker(job)
    logging.getLogger(__name__).info("ran %d trial(s)", ran)


def run_workers(job: SearchJob, workers: int) -> list[int]:
    """Run `workers` processes on `job` until the study holds its trials; their exit codes.

    With one worker the trials run in this process (no spawn, easier to debug).
    """
    threads = split_threads(workers)
    # Data loader processes would compete with the other workers for the same cores.
    budget = dataclasses.replace(
        job.budget,
        threads=job.budget.threads or threads,
        loader_workers=0 if workers > 1 else job.budget.loader_workers,
    )
    job = dataclasses.replace(job, budget=budget)
    if workers == 1:
        run_worker(job)
        return [0]
    context = multiprocessing.get_context("spawn")
    level = _console_level()
    processes: list[Any] = []
    for index in range(workers):
        seeded = job if job.seed is None else dataclasses.replace(job, seed=job.seed + index)
        process = context.Process(
            target=_worker_main, args=(seeded, index, level), name=f"search-worker-{index}"
        )
        process.start()
        processes.append(process)
    log.info("%d workers, %d torch thread(s) each", workers, threads)
    codes = []
    for process in processes:
        process.join()
        codes.append(int(process.exitcode or 0))
    for index, code in enumerate(codes):
        if code != 0:
            log.warning("worker %d ended with exit code %d; its trial will be retried", index, code)
    return codes
