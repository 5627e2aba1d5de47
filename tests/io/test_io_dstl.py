"""DSTL WKT CSV and grid sizes: the competition's transform, both ways, and the files."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from spectraseg.errors import LabelError
from spectraseg.io.dstl import (
    normalized_to_pixel_transform,
    parse_wkt,
    pixel_to_normalized_transform,
    read_grid_sizes,
    read_wkt_csv,
    transform_geometry,
    write_grid_sizes,
    write_wkt_csv,
)

XMAX, YMIN = 0.00918, -0.00904  # a typical competition image
HEIGHT, WIDTH = 3348, 3403


def test_normalized_corner_maps_to_the_scaled_image_size():
    to_pixels = normalized_to_pixel_transform(XMAX, YMIN, HEIGHT, WIDTH)
    col, row = to_pixels @ (XMAX, YMIN)
    assert col == pytest.approx(WIDTH**2 / (WIDTH + 1))
    assert row == pytest.approx(HEIGHT**2 / (HEIGHT + 1))
    assert to_pixels @ (0.0, 0.0) == (0.0, 0.0)


def test_pixel_to_normalized_is_the_exact_inverse():
    rng = np.random.default_rng(0)
    to_pixels = normalized_to_pixel_transform(XMAX, YMIN, HEIGHT, WIDTH)
    to_normalized = pixel_to_normalized_transform(XMAX, YMIN, HEIGHT, WIDTH)
    for col, row in rng.uniform(0, 3000, (20, 2)):
        back = to_pixels @ (to_normalized @ (col, row))
        assert back == pytest.approx((col, row), abs=1e-9)


def test_wkt_round_trip_through_the_csv_stays_within_one_pixel(tmp_path):
    polygon = shapely.Polygon([(10.5, 20.25), (1500.0, 30.0), (1400.75, 3000.5), (12.0, 2900.0)])
    to_normalized = pixel_to_normalized_transform(XMAX, YMIN, HEIGHT, WIDTH)
    normalized = transform_geometry(shapely.MultiPolygon([polygon]), to_normalized)
    write_wkt_csv(tmp_path / "wkt.csv", [("6120_2_2", 1, normalized), ("6120_2_2", 2, "")])
    rows = read_wkt_csv(tmp_path / "wkt.csv")
    assert [(r.image_id, r.class_type) for r in rows] == [("6120_2_2", "1"), ("6120_2_2", "2")]
    assert rows[1].wkt == "MULTIPOLYGON EMPTY"
    to_pixels = normalized_to_pixel_transform(XMAX, YMIN, HEIGHT, WIDTH)
    back = transform_geometry(parse_wkt(rows[0].wkt), to_pixels)
    assert shapely.hausdorff_distance(back, polygon) < 1.0
    assert shapely.hausdorff_distance(back, polygon) < 0.01  # 8 decimals: far below a pixel


def test_grid_sizes_read_the_competition_header_and_ours(tmp_path):
    competition = tmp_path / "grid_sizes.csv"
    competition.write_text(",Xmax,Ymin\n6010_0_0,0.00918,-0.00904\n6010_0_1,0.009169,-0.00904\n")
    assert read_grid_sizes(competition) == {
        "6010_0_0": (0.00918, -0.00904),
        "6010_0_1": (0.009169, -0.00904),
    }
    ours = tmp_path / "ours.csv"
    write_grid_sizes(ours, {"a": (XMAX, YMIN)})
    assert ours.read_text().splitlines()[0] == "ImageId,Xmax,Ymin"
    assert read_grid_sizes(ours) == {"a": (XMAX, YMIN)}


def test_grid_sizes_with_positive_ymin_are_rejected(tmp_path):
    bad = tmp_path / "grid_sizes.csv"
    bad.write_text("ImageId,Xmax,Ymin\nx,0.009,0.009\n")
    with pytest.raises(LabelError, match="Ymin < 0"):
        read_grid_sizes(bad)


def test_wkt_csv_with_a_wrong_header_says_what_it_expected(tmp_path):
    bad = tmp_path / "wkt.csv"
    bad.write_text("id,class,geometry\nx,1,POLYGON EMPTY\n")
    with pytest.raises(LabelError, match="ImageId,ClassType,MultipolygonWKT"):
        read_wkt_csv(bad)


def test_missing_grid_sizes_file_is_a_label_error(tmp_path):
    with pytest.raises(LabelError, match="no such file"):
        read_grid_sizes(tmp_path / "absent.csv")


def test_invalid_wkt_names_where_it_was(tmp_path):
    with pytest.raises(LabelError, match="img_1"):
        parse_wkt("MULTIPOLYGON (((0 0, 1", where="img_1")


def test_wkt_csv_is_written_atomically(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(ZeroDivisionError):
        write_wkt_csv(target, ((str(1 / 0), 1, "") for _ in range(1)))
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
