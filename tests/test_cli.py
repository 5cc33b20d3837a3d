"""The edgeseg command line on the real models: predict, info, eval (with the accuracy bar) and bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools import mask as mask_utils

from edgeseg.cli import main

from conftest import ANNOTATIONS, IMAGES, MODELS, REFERENCE, require_shared

MODEL = MODELS / "yolov8n-seg.onnx"


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("predict", "info", "eval", "bench"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "--" in capsys.readouterr().out


def test_info_prints_the_spec(capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    assert main(["info", str(MODELS / "yolov8n-seg-e2e.onnx")]) == 0
    out = capsys.readouterr().out
    assert "yolo_e2e" in out and "output0" in out and "CPUExecutionProvider" in out
    assert "family:      yolo" in out and "layout:      yolo_e2e (Ultralytics export, NMS in the graph)" in out
    assert "preprocess:  letterbox, pad grey 114, RGB, pixel / 255" in out


def test_info_lists_the_layouts_and_needs_a_model_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    from edgeseg.heads import FAMILIES

    assert main(["info", "--layouts"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Supported layouts:")
    assert set(FAMILIES) == {"yolo", "yolo_split", "yolact", "dets", "rtmdet", "solov2"}
    for family in FAMILIES.values():
        assert family.layouts, f"family {family.name} describes no layout"
        assert family.layouts.splitlines()[0] in out
    assert main(["info"]) == 2
    assert "give a model file (or name), or --layouts" in capsys.readouterr().err


def test_predict_folder_writes_images_and_coco_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    source = tmp_path / "images"
    source.mkdir()
    names = sorted(p.name for p in IMAGES.glob("*.jpg"))[:3]
    for name in names:
        (source / name).write_bytes((IMAGES / name).read_bytes())
    out_dir = tmp_path / "out"
    assert main(["predict", str(MODEL), str(source), "--out", str(out_dir), "--save-json", "-q"]) == 0
    assert sorted(p.name for p in out_dir.glob("*.jpg")) == names
    predictions = json.loads((out_dir / "predictions.json").read_text())
    reference = [d for d in json.loads((REFERENCE / "yolov8n-seg_conf0.25.json").read_text())]
    ids = {int(Path(n).stem) for n in names}
    assert len(predictions) == sum(d["image_id"] in ids for d in reference)
    assert {d["image_id"] for d in predictions} <= ids
    decoded = mask_utils.decode(predictions[0]["segmentation"])
    assert decoded.sum() > 0


def test_predict_single_image_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    image = sorted(IMAGES.glob("*.jpg"))[0]
    assert main(["predict", str(MODEL), str(image), "--out", str(tmp_path), "--classes", "person,tv"]) == 0
    assert "instances" in capsys.readouterr().out
    assert main(["predict", str(MODEL), str(tmp_path / "missing.jpg"), "--out", str(tmp_path)]) == 2
    assert "no such image" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.onnx"), str(image)]) == 2
    assert "no such model" in capsys.readouterr().err


def test_eval_meets_the_reference_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    """Box and mask mAP50-95 on coco-val-mini at least the reference's minus 0.003 (issue: eval)."""
    require_shared()
    args = ["eval", str(MODEL), "--images", str(IMAGES), "--annotations", str(ANNOTATIONS), "--json", "-q"]
    assert main(args) == 0
    report = _last_json(capsys.readouterr().out)
    summary = [json.loads(line) for line in (REFERENCE / "summary.jsonl").read_text().splitlines() if line.strip()]
    ref = next(r for r in summary if r["model"] == "yolov8n-seg.onnx" and r["conf"] == 0.001)
    assert report["images"] == ref["images"] == 79
    assert report["box_map50_95"] >= ref["box_map"][0] - 0.003
    assert report["mask_map50_95"] >= ref["mask_map"][0] - 0.003
    for key in ("box_map50", "mask_map50", "detections", "model", "conf", "iou", "max_det"):
        assert key in report
    for key in ("preprocess_ms", "inference_ms", "postprocess_ms"):
        assert report[key] > 0


def test_eval_reports_missing_images_and_unknown_categories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    dataset = json.loads(ANNOTATIONS.read_text())
    dataset["images"] = dataset["images"][:2]
    keep = {i["id"] for i in dataset["images"]}
    dataset["annotations"] = [a for a in dataset["annotations"] if a["image_id"] in keep]
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / dataset["images"][0]["file_name"]).write_bytes(
        (IMAGES / dataset["images"][0]["file_name"]).read_bytes()
    )
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(dataset))
    assert main(["eval", str(MODEL), "--images", str(tmp_path / "images"), "--annotations", str(ann), "-q"]) == 2
    assert dataset["images"][1]["file_name"] in capsys.readouterr().err

    dataset["images"] = dataset["images"][:1]
    keep = {dataset["images"][0]["id"]}
    dataset["categories"] = [{"id": 1, "name": "person"}, {"id": 2, "name": "forklift"}]
    dataset["annotations"] = [a for a in dataset["annotations"] if a["category_id"] == 1 and a["image_id"] in keep]
    ann.write_text(json.dumps(dataset))
    assert main(["eval", str(MODEL), "--images", str(tmp_path / "images"), "--annotations", str(ann), "-q"]) == 2
    assert "forklift" in capsys.readouterr().err


def test_bench_json_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    assert main(["bench", str(MODEL), "--warmup", "1", "--runs", "3", "--json", "-q"]) == 0
    out = capsys.readouterr().out
    assert "synthetic 640x640" in out
    report = _last_json(out)
    for stage in ("preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"):
        assert set(report[stage]) == {"p50", "p90", "p99", "mean"}
        assert report[stage]["p50"] > 0
    assert report["fps"] > 0 and report["peak_rss_mb"] > 0 and report["threads"] >= 1
    assert report["runtime"] == "onnxruntime" and "detections_mean" in report

    assert (
        main(["bench", str(MODEL), "--images", str(IMAGES), "--limit", "2", "--runs", "2", "--warmup", "0", "-q"]) == 0
    )
    assert "2 image(s)" in capsys.readouterr().out


def test_bench_plot(tmp_path: Path) -> None:
    require_shared()
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    assert main(["bench", str(MODEL), "--warmup", "0", "--runs", "3", "--plot", str(png), "-q"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_faster_coco_eval_gives_the_same_numbers() -> None:
    require_shared()
    pytest.importorskip("faster_coco_eval")
    import edgeseg
    from edgeseg.evaluate import evaluate

    model = edgeseg.load(MODEL)
    a = evaluate(model, IMAGES, ANNOTATIONS, conf=0.25, progress=False, evaluator="pycocotools")
    b = evaluate(model, IMAGES, ANNOTATIONS, conf=0.25, progress=False, evaluator="faster-coco-eval")
    assert (a.evaluator, b.evaluator) == ("pycocotools", "faster-coco-eval")
    for key in ("box_map50_95", "box_map50", "mask_map50_95", "mask_map50"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), abs=1e-9)
