"""The page: every figure embedded as PNG, nothing fetched, a section for every kind of input."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

from spectraseg.report.build import figures_dir, write_report
from spectraseg.report.page import SECTIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_PNG = "data:image/png;base64,"


class Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def elements(path: Path) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tags


def test_every_image_is_an_embedded_png(full_report: Path) -> None:
    images = [attrs for tag, attrs in elements(full_report) if tag == "img"]
    assert len(images) >= 10
    for attrs in images:
        assert attrs["src"].startswith(DATA_PNG), attrs["src"][:40]
        assert base64.b64decode(attrs["src"][len(DATA_PNG) :]).startswith(PNG_SIGNATURE)


def test_the_page_makes_no_network_request(full_report: Path) -> None:
    for tag, attrs in elements(full_report):
        for name in ("src", "href", "srcset", "action", "data"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(name, ""), re.I), (tag, attrs)
    text = full_report.read_text(encoding="utf-8")
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text, re.I)  # no CSS fetches either
    assert "<script src" not in text and '<link rel="stylesheet"' not in text


def test_every_section_with_inputs_is_present_in_page_order(full_report: Path) -> None:
    sections = [attrs["id"] for tag, attrs in elements(full_report) if tag == "section"]
    assert sections == list(SECTIONS)


def test_sections_without_inputs_are_left_out(tmp_path: Path, make_source) -> None:
    from dataclasses import replace

    bare = replace(
        make_source("forest", tmp_path),
        history=None,
        scenes=(),
        thresholds=None,
        settings=None,
        provenance={},
    )
    bare.scores.pop("confusion")
    page = write_report([bare], tmp_path / "report.html")
    assert [a["id"] for t, a in elements(page) if t == "section"] == ["scores"]


def test_the_best_jaccard_of_each_class_is_marked_when_models_are_compared(
    full_report: Path,
) -> None:
    text = full_report.read_text(encoding="utf-8")
    best = re.findall(r'<td class="best"[^>]*>([0-9.]+) ★</td>', text)
    assert len(best) == 2  # one per class; the model shifted by one column wins both
    unet_columns = text.split("<tbody>")[1].split("</tr>")[0]
    assert unet_columns.count('class="best"') == 1


def test_each_overlay_has_prediction_and_truth_and_a_toggle(full_report: Path) -> None:
    tags = elements(full_report)
    toggles = [a for t, a in tags if t == "figure" and "toggle" in a.get("class", "")]
    assert len(toggles) == 2  # one scene, two models side by side
    truth = [a for t, a in tags if t == "img" and a.get("class") == "truth"]
    assert all("hidden" in a for a in truth)


def test_the_figures_are_also_png_files_beside_the_report(full_report: Path) -> None:
    files = sorted(p.name for p in figures_dir(full_report).glob("*.png"))
    assert "overlay-unet-scene_a-truth.png" in files
    assert "confusion-forest.png" in files and "thresholds-unet.png" in files
    assert all((figures_dir(full_report) / f).read_bytes().startswith(PNG_SIGNATURE) for f in files)


def test_a_rebuild_removes_figures_it_no_longer_draws(tmp_path: Path, make_source) -> None:
    target = tmp_path / "report.html"
    write_report([make_source("unet", tmp_path)], target)
    write_report([make_source("forest", tmp_path)], target)
    assert not list(figures_dir(target).glob("*unet*"))
