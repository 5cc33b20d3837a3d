"""The bundled PartSeg model: shipped in the package, the default of predict and demo, and accurate on
fresh scenes of the generator it was trained on (a held-out seed, never seen in training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg import zoo
from edgeseg.cli import main
from edgeseg.evaluate import evaluate
from edgeseg.synthparts import CLASSES, write_dataset

HELD_OUT_SEED = 777_777  # not the training seed (0) nor the card's validation seed


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("held_out")
    write_dataset(out, 40, seed=HELD_OUT_SEED, progress=False)
    return out


def test_bundled_models_are_installed_and_load_with_no_configuration() -> None:
    for name in ("partseg", "partseg-int8"):
        entry = zoo.get(name)
        assert entry.bundled and entry.licence == "Apache-2.0"
        path = zoo.resolve(name)
        assert path.is_file() and path.parent.name == "models"
        model = edgeseg.load(name)
        assert model.spec.names == CLASSES and model.spec.head == "yolo"
        assert model.spec.outputs[0].shape[1] == 4 + len(CLASSES) + 32
    assert zoo.fetch("partseg") == zoo.resolve("partseg")  # nothing to download


@pytest.mark.parametrize(("name", "floor"), [("partseg", 0.60), ("partseg-int8", 0.585)])
def test_bundled_model_segments_held_out_scenes(held_out: Path, name: str, floor: float) -> None:
    report = evaluate(edgeseg.load(name), held_out / "images", held_out / "annotations.json", progress=False)
    assert report.mask_map50_95 >= floor, report
    assert report.box_map50_95 >= floor, report


def test_int8_model_agrees_with_fp32(held_out: Path) -> None:
    fp32, int8 = edgeseg.load("partseg"), edgeseg.load("partseg-int8")
    agree = []
    for path in sorted((held_out / "images").glob("*.png"))[:10]:
        a, b = fp32(str(path)), int8(str(path))
        agree.append(sorted(a.labels) == sorted(b.labels))
    assert np.mean(agree) >= 0.7


def test_predict_without_a_model_uses_the_bundled_one(
    held_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = held_out / "images" / "000000.png"
    assert main(["predict", str(image), "--out", str(tmp_path), "--save-json", "-q"]) == 0
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    truth = [a for a in json.loads((held_out / "annotations.json").read_text())["annotations"] if a["image_id"] == 0]
    assert abs(len(predictions) - len(truth)) <= 1
    assert (tmp_path / "000000.png").is_file()
    assert main(["predict", str(image), str(image)]) == 2  # the second argument is not a model
    assert main(["predict", "partseg", str(image), "--model", "partseg", "-q"]) == 2
    assert "not both" in capsys.readouterr().err


def test_demo_renders_segments_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.png"
    assert main(["demo", "--seed", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "scene seed 3" in text and "total" in text and out.is_file()
    total = next(line for line in text.splitlines() if line.startswith("total")).split()
    found, true = int(total[1]), int(total[2])
    assert true > 0 and abs(found - true) <= max(1, true // 4)
    import cv2

    assert cv2.imread(str(out)).shape == (384, 1024, 3)


def test_demo_and_synth_reject_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--width", "10", "--out", str(tmp_path / "x.png")]) == 2
    assert "width" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "d"), "--count", "0"]) == 2
    assert "count" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "d"), "--count", "2", "-q"]) == 0
    assert len(list((tmp_path / "d" / "images").glob("*.png"))) == 2


def test_models_lists_the_bundled_entries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]}
    assert rows["partseg"]["cached"] and rows["partseg"]["licence"] == "Apache-2.0"
    assert "bundled" in rows["partseg"]["download"]
