"""The report page: one HTML file, figures inline as PNG data URIs, no request leaves the page.

Sections appear in this order and only when a source has their inputs:

    scores      per-class Jaccard, precision, recall, F1 and pixel shares, sources side by side,
                the best Jaccard per class marked
    training    loss, mean and per-class Jaccard, learning rate (history.csv)
    overlays    prediction and truth over the scene, a button toggling between them
    errors      false positives and false negatives in distinct colours
    confusion   multi-class (softmax) runs
    thresholds  Jaccard against threshold per class, the chosen threshold marked
    search      the figures of the search the run came from
    settings    provenance and the resolved config

The inline script only toggles `hidden` on images already in the page.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from spectraseg.report.figures import ERROR_COLOURS
from spectraseg.report.sources import Colour, ReportSource

__all__ = ["SECTIONS", "figure_name", "render_page"]

SECTIONS = {
    "scores": "Scores per class",
    "training": "Training",
    "overlays": "Prediction and truth",
    "errors": "Errors",
    "confusion": "Confusion",
    "thresholds": "Thresholds",
    "search": "Search",
    "settings": "Settings and provenance",
}

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5em 3em; color: #1d1d1f; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f6; }
td.best { font-weight: bold; background: #e9f5e1; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.9em; color: #555; max-width: 640px; }
figure img { display: block; max-width: 100%; border: 1px solid #ddd; }
img[hidden] { display: none !important; }
figure.scene { width: 480px; } figure.scene img { width: 100%; image-rendering: pixelated; }
.legend span { display: inline-block; margin-right: 1em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em;
          margin-right: 0.3em; border: 1px solid #888; }
button { font: inherit; cursor: pointer; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; word-break: break-all; }
pre { background: #f6f6f8; padding: 0.8em; overflow: auto; max-height: 30em; }
"""

SCRIPT = """
function showTruth(figure, truth) {
  figure.querySelector("img.prediction").hidden = truth;
  figure.querySelector("img.truth").hidden = !truth;
  figure.dataset.showing = truth ? "truth" : "prediction";
  figure.querySelector("button").textContent = truth ? "show prediction" : "show truth";
}
document.querySelectorAll("figure.toggle").forEach(function (figure) {
  figure.querySelector("button").addEventListener("click", function () {
    showTruth(figure, figure.dataset.showing === "prediction");
  });
});
var all = document.getElementById("toggle-all");
if (all) all.addEventListener("click", function () {
  var truth = all.dataset.showing === "prediction";
  document.querySelectorAll("figure.toggle").forEach(function (f) { showTruth(f, truth); });
  all.dataset.showing = truth ? "truth" : "prediction";
  all.textContent = truth ? "show every prediction" : "show every truth";
});
"""


def slug(text: str) -> str:
    """A file-name-safe version of a label or scene name.

    Example:
        >>> slug("runs/unet v2")
        'runs_unet_v2'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def figure_name(kind: str, label: str, *parts: str) -> str:
    """The PNG file name of a figure, e.g. `overlay-unet-scene_0-truth.png`."""
    return "-".join([kind, slug(label), *(slug(p) for p in parts)]) + ".png"


def _image(png: bytes, alt: str, css_class: str = "", *, hidden: bool = False) -> str:
    data = base64.b64encode(png).decode("ascii")
    attributes = f' class="{css_class}"' if css_class else ""
    attributes += " hidden" if hidden else ""
    return f'<img{attributes} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.4f}"


def _share(count: int, pixels: Any) -> str:
    if not pixels:
        return "n/a"
    return f"{100.0 * count / float(pixels):.2f} %"


def _swatch(colour: Colour) -> str:
    return f'<span class="swatch" style="background: rgb{tuple(colour)}"></span>'


def _legend(names: Sequence[str], colours: Sequence[Colour]) -> str:
    items = "".join(
        f"<span>{_swatch(c)}{html.escape(n)}</span>" for n, c in zip(names, colours, strict=True)
    )
    return f'<p class="legend">{items}</p>'


def _scores_section(sources: Sequence[ReportSource]) -> str:
    scored = [s for s in sources if s.scores]
    names = list(dict.fromkeys(n for s in scored for n in (s.scores or {}).get("classes", [])))
    columns = ("Jaccard", "precision", "recall", "F1", "in truth", "predicted")
    head = "<tr><th rowspan=2>class</th>" + "".join(
        f'<th colspan="{len(columns)}">{html.escape(s.label)}</th>' for s in scored
    )
    head += "</tr><tr>" + "".join(f"<th>{c}</th>" for _ in scored for c in columns) + "</tr>"
    rows = []
    for name in names:
        per_source = [(s.scores or {}).get("per_class", {}).get(name) for s in scored]
        values = [p.get("jaccard") if p else None for p in per_source]
        finite = [v for v in values if v is not None]
        best = max(finite) if len(scored) > 1 and finite else None
        cells = [f"<td>{html.escape(name)}</td>"]
        for source, scores, jaccard in zip(scored, per_source, values, strict=True):
            if scores is None:
                cells += ["<td>—</td>"] * len(columns)
                continue
            pixels = (source.scores or {}).get("pixels")
            marked = best is not None and jaccard == best
            cells.append(
                f'<td class="best" title="best Jaccard of this class">{_number(jaccard)} ★</td>'
                if marked
                else f"<td>{_number(jaccard)}</td>"
            )
            cells += [f"<td>{_number(scores.get(k))}</td>" for k in ("precision", "recall", "f1")]
            true_count = scores["true_positive"] + scores["false_negative"]
            predicted = scores["true_positive"] + scores["false_positive"]
            cells += [
                f"<td>{_share(true_count, pixels)}</td>",
                f"<td>{_share(predicted, pixels)}</td>",
            ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    means = "".join(
        f"<td>{_number((s.scores or {}).get('mean_jaccard'))}</td>"
        + "<td></td>" * (len(columns) - 1)
        for s in scored
    )
    rows.append(f"<tr><th>mean Jaccard</th>{means}</tr>")
    note = (
        "<p>Pixel scores over every scored pixel of every scene. "
        + ("★ marks the best Jaccard of each class. " if len(scored) > 1 else "")
        + "“in truth” and “predicted” are each class's share of the scored pixels.</p>"
    )
    return f"{note}<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _per_source(
    sources: Sequence[ReportSource],
    figures: Mapping[str, bytes],
    kind: str,
    caption: Callable[[ReportSource], str],
) -> str:
    parts = []
    for source in sources:
        png = figures.get(figure_name(kind, source.label))
        if png is not None:
            parts.append(
                f"<figure>{_image(png, f'{kind} of {source.label}')}"
                f"<figcaption>{html.escape(caption(source))}</figcaption></figure>"
            )
    return f'<div class="row">{"".join(parts)}</div>'


def _scene_names(sources: Sequence[ReportSource]) -> list[str]:
    return list(dict.fromkeys(v.name for s in sources for v in s.scenes))


def _overlays_section(sources: Sequence[ReportSource], figures: Mapping[str, bytes]) -> str:
    first = next(s for s in sources if s.scenes)
    parts = [
        _legend(first.class_names, first.class_colours),
        '<p><button type="button" id="toggle-all" data-showing="prediction">'
        "show every truth</button></p>",
    ]
    for scene in _scene_names(sources):
        row = []
        for source in sources:
            view = next((v for v in source.scenes if v.name == scene), None)
            if view is None:
                continue
            prediction = figures[figure_name("overlay", source.label, scene, "prediction")]
            truth = figures[figure_name("overlay", source.label, scene, "truth")]
            height, width = view.shape
            row.append(
                '<figure class="scene toggle" data-showing="prediction">'
                + _image(prediction, f"{source.label} prediction of {scene}", "prediction")
                + _image(truth, f"truth of {scene}", "truth", hidden=True)
                + f"<figcaption><b>{html.escape(source.label)}</b> "
                '<button type="button">show truth</button><br>'
                f"{html.escape(view.caption)}; {height} × {width} px shown at "
                f"{view.ignore.shape[0]} × {view.ignore.shape[1]}</figcaption></figure>"
            )
        parts.append(f'<h3>{html.escape(scene)}</h3><div class="row">{"".join(row)}</div>')
    return "".join(parts)


def _errors_section(sources: Sequence[ReportSource], figures: Mapping[str, bytes]) -> str:
    legend = "".join(
        f"<span>{_swatch(c)}{html.escape(kind)}</span>" for kind, c in ERROR_COLOURS.items()
    )
    parts = [
        f'<p class="legend">{legend}</p><p>Over all classes: a pixel predicted in a class it '
        "does not have is a false positive, one missing a class it has a false negative, both "
        "at once a wrong class. Unscored pixels are dimmed.</p>"
    ]
    for scene in _scene_names(sources):
        row = []
        for source in sources:
            png = figures.get(figure_name("errors", source.label, scene))
            if png is not None:
                row.append(
                    f'<figure class="scene">{_image(png, f"errors of {source.label} on {scene}")}'
                    f"<figcaption><b>{html.escape(source.label)}</b></figcaption></figure>"
                )
        parts.append(f'<h3>{html.escape(scene)}</h3><div class="row">{"".join(row)}</div>')
    return "".join(parts)


def _search_section(sources: Sequence[ReportSource], figures: Mapping[str, bytes]) -> str:
    parts = []
    for source in sources:
        images = []
        for path in source.search_figures:
            png = figures[figure_name("search", source.label, path.parent.name, path.stem)]
            images.append(
                f"<figure>{_image(png, path.stem)}<figcaption>{html.escape(path.parent.name)}: "
                f"{html.escape(path.stem)}</figcaption></figure>"
            )
        if images:
            parts.append(
                f'<h3>{html.escape(source.label)}</h3><div class="row">{"".join(images)}</div>'
            )
    return "".join(parts)


def _settings_section(sources: Sequence[ReportSource]) -> str:
    parts = []
    for source in sources:
        items = "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
            for k, v in source.provenance.items()
        )
        config = ""
        if source.settings:
            text = yaml.safe_dump(source.settings, sort_keys=False)
            config = f"<details><summary>config</summary><pre>{html.escape(text)}</pre></details>"
        parts.append(f"<h3>{html.escape(source.label)}</h3><dl>{items}</dl>{config}")
    return "".join(parts)


def present_sections(sources: Sequence[ReportSource]) -> list[str]:
    """The ids of the sections these sources have inputs for, in page order."""
    has = {
        "scores": any(s.scores for s in sources),
        "training": any(s.history for s in sources),
        "overlays": any(s.scenes for s in sources),
        "errors": any(s.scenes for s in sources),
        "confusion": any(s.multiclass for s in sources),
        "thresholds": any(s.thresholds is not None for s in sources),
        "search": any(s.search_figures for s in sources),
        "settings": any(s.provenance or s.settings for s in sources),
    }
    return [name for name in SECTIONS if has[name]]


def render_page(
    sources: Sequence[ReportSource], figures: Mapping[str, bytes], *, title: str, created: str
) -> str:
    """The whole page; `figures` maps `figure_name`s to PNG bytes."""
    bodies: dict[str, Callable[[], str]] = {
        "scores": lambda: _scores_section(sources),
        "training": lambda: _per_source(
            sources, figures, "curves", lambda s: f"{s.label}: {len(s.history or [])} epoch(s)"
        ),
        "overlays": lambda: _overlays_section(sources, figures),
        "errors": lambda: _errors_section(sources, figures),
        "confusion": lambda: _per_source(
            sources, figures, "confusion", lambda s: f"{s.label}: rows truth, columns prediction"
        ),
        "thresholds": lambda: _per_source(
            sources,
            figures,
            "thresholds",
            lambda s: f"{s.label}: on the shown scenes' pixels; dots mark the thresholds in use",
        ),
        "search": lambda: _search_section(sources, figures),
        "settings": lambda: _settings_section(sources),
    }
    present = present_sections(sources)
    nav = "".join(f'<a href="#{name}">{SECTIONS[name]}</a>' for name in present)
    sections = "".join(
        f'<section id="{name}"><h2>{SECTIONS[name]}</h2>{bodies[name]()}</section>'
        for name in present
    )
    labels = ", ".join(html.escape(s.label) for s in sources)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{labels} · {html.escape(created)}</p>"
        f"<nav>{nav}</nav></header>{sections}<script>{SCRIPT}</script></body></html>\n"
    )
