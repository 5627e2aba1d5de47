"""`spectraseg predict`: checkpoints, run folders and ensembles in; bad input is exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from spectraseg.cli.main import main


def _predict(*args: object) -> int:
    return main(["predict", *(str(a) for a in args), "-q"])


def test_predicts_several_inputs_with_a_checkpoint(make_checkpoint, make_raster, tmp_path):
    checkpoint = make_checkpoint()
    first = make_raster(37, 53, name="first.tif")
    second = make_raster(20, 25, name="second.tif", seed=1)
    out = tmp_path / "out"
    assert _predict(checkpoint, first, second, "--out", out, "--tta", "2") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "first_classes.qml",
        "first_classes.tif",
        "first_mask.tif",
        "first_probs.tif",
        "second_classes.qml",
        "second_classes.tif",
        "second_mask.tif",
        "second_probs.tif",
    ]
    with rasterio.open(out / "first_probs.tif") as dataset:
        assert dataset.descriptions == ("building", "water")
        probs = dataset.read()
    assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()


def test_a_run_folder_means_its_best_checkpoint(make_checkpoint, make_raster, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    make_checkpoint(name="run/best.pt")
    out = tmp_path / "out"
    assert _predict(run, make_raster(), "--out", out, "--tta", "1", "--window", "32") == 0
    assert (out / "scene_probs.tif").exists()


def test_an_ensemble_averages_its_members(make_checkpoint, make_raster, tmp_path):
    make_checkpoint(name="a.pt", seed=1)
    make_checkpoint(name="b.pt", seed=2, band_names=("red", "green", "blue"))
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members:\n  - {path: a.pt, weight: 3}\n  - {path: b.pt}\n")
    raster = make_raster()
    for name, checkpoint in (("a", "a.pt"), ("b", "b.pt"), ("ensemble", ensemble)):
        assert _predict(tmp_path / checkpoint, raster, "--out", tmp_path / name, "--tta", "1") == 0
    probs = {}
    for name in ("a", "b", "ensemble"):
        with rasterio.open(tmp_path / name / "scene_probs.tif") as dataset:
            probs[name] = dataset.read()
    assert np.allclose(probs["ensemble"], 0.75 * probs["a"] + 0.25 * probs["b"], atol=1e-5)


def test_a_random_forest_predicts_per_pixel_through_the_same_command(
    make_checkpoint, make_raster, tmp_path
):
    checkpoint = make_checkpoint("random-forest")
    out = tmp_path / "out"
    assert _predict(checkpoint, make_raster(), "--out", out) == 0
    with rasterio.open(out / "scene_mask.tif") as dataset:
        assert set(np.unique(dataset.read())) <= {0, 1}


def test_a_band_layout_unlike_the_checkpoints_is_exit_2_naming_file_and_bands(
    make_checkpoint, make_raster, tmp_path, capsys
):
    raster = make_raster(band_names=("nir", "swir1", "swir2"), name="other.tif")
    assert _predict(make_checkpoint(), raster, "--out", tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert "other.tif" in error and "blue, green, red" in error and "nir, swir1, swir2" in error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken"])
def test_a_corrupt_checkpoint_is_exit_2_naming_it(content, make_raster, tmp_path, capsys):
    checkpoint = tmp_path / "broken.pt"
    checkpoint.write_bytes(content)
    assert _predict(checkpoint, make_raster(), "--out", tmp_path / "out") == 2
    assert "broken.pt" in capsys.readouterr().err


def test_an_existing_output_without_overwrite_is_exit_2_and_nothing_is_written(
    make_checkpoint, make_raster, tmp_path, capsys
):
    checkpoint = make_checkpoint()
    first = make_raster(name="first.tif")
    second = make_raster(name="second.tif")
    out = tmp_path / "out"
    out.mkdir()
    (out / "second_probs.tif").write_bytes(b"earlier")
    assert _predict(checkpoint, first, second, "--out", out) == 2
    assert "second_probs.tif" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["second_probs.tif"]
    assert (
        main(
            [
                "predict",
                str(checkpoint),
                str(second),
                "--out",
                str(out),
                "--overwrite",
                "--tta",
                "1",
                "-q",
            ]
        )
        == 0
    )


def test_an_output_folder_that_cannot_be_written_is_exit_2(
    make_checkpoint, make_raster, tmp_path, capsys
):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert _predict(make_checkpoint(), make_raster(), "--out", blocker / "out") == 2
    assert "file" in capsys.readouterr().err


def test_an_impossible_centre_crop_is_exit_2_naming_the_option(
    make_checkpoint, make_raster, tmp_path, capsys
):
    args = ("--out", tmp_path / "out", "--window", "16", "--centre-crop", "6")
    assert _predict(make_checkpoint(), make_raster(), *args) == 2
    assert "--centre-crop" in capsys.readouterr().err


def test_two_inputs_with_the_same_name_are_refused(make_checkpoint, make_raster, tmp_path, capsys):
    raster = make_raster()
    assert _predict(make_checkpoint(), raster, raster, "--out", tmp_path / "out") == 2
    assert "scene_probs.tif" in capsys.readouterr().err


def test_an_ensemble_predicts_the_union_of_its_members_classes(
    make_checkpoint, make_raster, tmp_path
):
    make_checkpoint(name="a.pt", seed=1)
    make_checkpoint(name="b.pt", seed=2, class_names=("water", "road"), class_ids=(2, 3))
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members: [{path: a.pt, weight: 3}, {path: b.pt}]\n")
    raster = make_raster()
    for name, checkpoint in (("a", "a.pt"), ("b", "b.pt"), ("ensemble", ensemble)):
        assert _predict(tmp_path / checkpoint, raster, "--out", tmp_path / name, "--tta", "1") == 0
    probs = {}
    for name in ("a", "b", "ensemble"):
        with rasterio.open(tmp_path / name / "scene_probs.tif") as dataset:
            probs[name] = dataset.read()
            classes = dataset.descriptions
    assert classes == ("building", "water", "road")
    building, water, road = probs["ensemble"]
    assert np.allclose(building, probs["a"][0], atol=1e-5)
    assert np.allclose(water, 0.75 * probs["a"][1] + 0.25 * probs["b"][0], atol=1e-5)
    assert np.allclose(road, probs["b"][1], atol=1e-5)


def test_ensemble_members_giving_a_class_another_id_are_refused(
    make_checkpoint, make_raster, tmp_path, capsys
):
    make_checkpoint(name="a.pt")
    make_checkpoint(name="b.pt", class_names=("building", "road"))
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members: [{path: a.pt}, {path: b.pt}]\n")
    assert _predict(ensemble, make_raster(), "--out", tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "ensemble.yaml" in error and "b.pt" in error and "road has id 2" in error


def test_softmax_members_predicting_other_classes_are_refused(
    make_checkpoint, make_raster, tmp_path, capsys
):
    make_checkpoint(name="a.pt", head="softmax")
    make_checkpoint(name="b.pt", head="softmax", class_names=("road", "tree"), class_ids=(3, 4))
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members: [{path: a.pt}, {path: b.pt}]\n")
    assert _predict(ensemble, make_raster(), "--out", tmp_path / "out") == 2
    assert "sigmoid heads" in capsys.readouterr().err


def test_an_ensemble_without_members_is_refused(make_raster, tmp_path, capsys):
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members: []\n")
    assert _predict(ensemble, make_raster(), "--out", tmp_path / "out") == 2
    assert "ensemble.yaml: members" in capsys.readouterr().err


def test_the_log_says_what_a_pixel_costs_and_why(make_checkpoint, make_raster, tmp_path, capsys):
    checkpoint, raster = make_checkpoint(), make_raster(64, 64)
    assert (
        main(
            [
                "predict",
                str(checkpoint),
                str(raster),
                "--out",
                str(tmp_path / "patch"),
                "--window",
                "patch",
            ]
        )
        == 0
    )
    line = next(x for x in capsys.readouterr().err.splitlines() if "passes per pixel" in x)
    # An unmeasured checkpoint: the training patch at 50% overlap and 8 passes.
    assert "32.00 network passes per pixel" in line
    assert "window 16 px (training patch)" in line and "overlap 50%" in line and "TTA 8" in line
    assert main(["predict", str(checkpoint), str(raster), "--out", str(tmp_path / "auto")]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if "passes per pixel" in x)
    assert "(auto:" in line and "TTA 8 (auto: no validation Jaccard" in line


@pytest.mark.parametrize("bad", [("--window", "big"), ("--tta", "3"), ("--tta", "16")])
def test_bad_window_or_tta_values_are_exit_2(bad, make_checkpoint, make_raster, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _predict(make_checkpoint(), make_raster(), "--out", tmp_path / "out", *bad)
    assert exit_info.value.code == 2
