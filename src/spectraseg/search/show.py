"""`--show`: the top trials as a table and the study's figures, as PNG and interactive HTML.

The PNGs come from Optuna's matplotlib backend (no browser needed); the HTML versions need
plotly, which is optional: without it the command says so and writes the PNGs only. For a live
view of the same storage, `optuna-dashboard sqlite-or-journal-or-url` works as well (README).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.io.atomic import atomic_path, write_text_atomic
from spectraseg.search.storage import JOURNAL_FILE, open_storage, study_names

__all__ = ["FIGURES", "open_existing_study", "show_study", "top_trials_table"]

log = logging.getLogger(__name__)

FIGURES = ("history", "importances", "parallel_coordinate", "slice")


def open_existing_study(out_dir: Path, study: str | None, storage_url: str | None) -> optuna.Study:
    """The named (default: newest) study of a search folder or database; never creates one.

    Raises:
        ConfigError: no search in that folder, or no study of that name.
    """
    if storage_url is None and not (out_dir / JOURNAL_FILE).is_file():
        raise ConfigError(
            f"{out_dir}: no search here (no {JOURNAL_FILE}); run spectraseg search --data DIR "
            f"--out {out_dir} first, or pass --storage URL."
        )
    storage = open_storage(out_dir, storage_url)
    names = study_names(storage)
    if not names:
        raise ConfigError(f"{storage_url or out_dir}: holds no study yet.")
    name = study or names[-1]
    if name not in names:
        raise ConfigError(f"--study {name}: no such study{did_you_mean(name, names)}.")
    return optuna.load_study(study_name=name, storage=storage)


def lineage(study: optuna.Study) -> list[str]:
    """The study and its ancestors (newest first), from the `parent` attributes."""
    names = [study.study_name]
    storage = study._storage
    parent = study.user_attrs.get("parent")
    while parent and parent not in names:
        names.append(parent)
        parent = optuna.load_study(study_name=parent, storage=storage).user_attrs.get("parent")
    return names


def top_trials_table(study: optuna.Study, count: int = 10) -> str:
    """The best `count` completed trials, one line each, plus counts by state: the score
    (the mean of the trial's best epochs) and its best epoch's, which its `best.pt` holds."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    done.sort(key=lambda t: float(t.value or 0.0), reverse=True)
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    lines = [
        f"study {' <- '.join(lineage(study))}: "
        + ", ".join(f"{n} {state}" for state, n in sorted(states.items())),
        f"{'trial':>5}  {'score':>7}  {'best':>7}  parameters",
    ]
    for trial in done[:count]:
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        best = trial.user_attrs.get("best_score")
        best_text = f"{float(best):>7.4f}" if best is not None else f"{'—':>7}"
        lines.append(f"{trial.number:>5}  {float(trial.value or 0.0):>7.4f}  {best_text}  {shown}")
    return "\n".join(lines)


def _figure_of(result: Any) -> Any:
    return np.ravel(np.asarray(result, dtype=object))[0].figure


def _plotters() -> dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]]:
    import optuna.visualization.matplotlib as mpl

    try:
        import optuna.visualization as interactive

        interactive._plotly_imports._imports.check()
        html: dict[str, Callable[..., Any]] | None = {
            "history": interactive.plot_optimization_history,
            "importances": interactive.plot_param_importances,
            "parallel_coordinate": interactive.plot_parallel_coordinate,
            "slice": interactive.plot_slice,
        }
    except ImportError:
        html = None
    png: dict[str, Callable[..., Any]] = {
        "history": mpl.plot_optimization_history,
        "importances": mpl.plot_param_importances,
        "parallel_coordinate": mpl.plot_parallel_coordinate,
        "slice": mpl.plot_slice,
    }
    return {name: (png[name], html[name] if html else None) for name in FIGURES}


def show_study(
    out_dir: Path, *, study: str | None = None, storage_url: str | None = None
) -> tuple[str, list[Path]]:
    """The top-trials table, and DIR/figures/<study>/<figure>.{png,html} written (their paths)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = open_existing_study(out_dir, study, storage_url)
    # Optuna calls its matplotlib plots experimental and warns on each one.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    folder = out_dir / "figures" / found.study_name
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plotters = _plotters()
    if all(html is None for _, html in plotters.values()):
        log.warning("plotly is not installed: PNG figures only (pip install plotly for HTML)")
    for name, (png, html) in plotters.items():
        try:
            figure = _figure_of(png(found))
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            # Importances need two completed trials with varied values, and so on.
            log.warning("%s: not drawn (%s)", name, " ".join(str(error).split()))
            continue
        figure.set_size_inches(10, 6)
        target = folder / f"{name}.png"
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(target)
        if html is not None:
            page = folder / f"{name}.html"
            write_text_atomic(page, html(found).to_html(include_plotlyjs=True))
            written.append(page)
    log.info("%s: %d figures", folder, len(written))
    return top_trials_table(found), written
