"""Health checks: degenerate outputs are reported instead of showing up as "no detections"."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg.cli import main
from edgeseg.health import check_model, inspect_outputs
from edgeseg.runtimes.base import TensorInfo

from conftest import IMAGES, MODELS, require_shared

COLLAPSED = MODELS / "broken" / "yolo11n-seg-qdq-collapsed.onnx"
HEALTHY = ["yolov8n-seg.onnx", "yolov8n-seg-e2e.onnx", "yolo11n-seg-dynint8.onnx", "yolov8n-seg-320-dynint8.onnx"]


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_models_pass(name: str) -> None:
    require_shared()
    report = check_model(edgeseg.load(MODELS / name))
    assert report.ok, report.problems
    assert report.max_class_score > 0.05


def test_healthy_tflite_passes() -> None:
    require_shared()
    pytest.importorskip("ai_edge_litert")
    assert check_model(edgeseg.load(MODELS / "yolo11n-seg-int8.tflite")).ok


def test_collapsed_model_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    report = check_model(edgeseg.load(COLLAPSED))
    assert not report.ok and report.max_class_score < 1e-3
    assert "about zero" in report.problems[0]
    assert main(["info", str(COLLAPSED), "--check"]) == 1
    assert "PROBLEM" in capsys.readouterr().out
    assert main(["info", str(MODELS / "yolov8n-seg.onnx"), "--check"]) == 0


def _nan_model(dst: Path) -> Path:
    """yolov8n-seg with NaN prototypes: what a broken conversion outputs, and a healthy model never does."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    model = onnx.load(str(MODELS / "yolov8n-seg.onnx"))
    protos = model.graph.output[1]
    nan = numpy_helper.from_array(np.array(np.nan, np.float32), "nan_value")
    model.graph.initializer.append(nan)
    model.graph.node.append(helper.make_node("Mul", [protos.name, "nan_value"], ["output1_nan"]))
    protos.name = "output1_nan"
    path = dst / "yolov8n-seg-nan.onnx"
    onnx.save(model, str(path))
    return path


def test_first_inference_warns_once_on_nan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_shared()
    model = edgeseg.load(_nan_model(tmp_path))
    image = sorted(IMAGES.glob("*.jpg"))[0]
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        for _ in range(2):
            with pytest.raises(ValueError, match="NaN"):  # the core refuses NaN logits, every call
                model(image)
    warnings = [r for r in caplog.records if "NaN" in r.getMessage()]
    assert len(warnings) == 1 and "--check" in warnings[0].getMessage()


@pytest.mark.parametrize("shape", [(480, 640, 3), (1, 10000, 3)], ids=["black-frame", "1x10000"])
def test_first_frame_without_objects_gives_no_warning(shape: tuple, caplog: pytest.LogCaptureFixture) -> None:
    # A camera's first frame is often black: a healthy model scoring nothing there is not broken.
    require_shared()
    model = edgeseg.load(MODELS / "yolov8n-seg.onnx")
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        model(np.zeros(shape, np.uint8))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_collapsed_model_is_left_to_the_check(caplog: pytest.LogCaptureFixture) -> None:
    # All-zero scores on a user's frame are not evidence; `edgeseg info --check` (the built-in scene) is.
    require_shared()
    model = edgeseg.load(COLLAPSED)
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        assert len(model(sorted(IMAGES.glob("*.jpg"))[0])) == 0
    assert not [r for r in caplog.records if "about zero" in r.getMessage()]
    assert not check_model(model).ok


def test_nan_and_saturated_outputs_are_reported() -> None:
    require_shared()
    spec = edgeseg.load(MODELS / "yolov8n-seg.onnx").spec
    det = np.zeros((1, 116, 8400), np.float32)
    det[0, 0, 5] = np.nan
    report = inspect_outputs(spec, [det, np.zeros((1, 32, 160, 160), np.float32)], 0.5)
    assert report.nonfinite_outputs == ["output0"] and not report.ok
    quantized = TensorInfo("q", (1, 8), np.dtype(np.int8), 0.1, 0)
    saturated = spec.__class__(**{**spec.__dict__, "outputs": (quantized,)})
    report = inspect_outputs(saturated, [np.full((1, 8), 127, np.int8)], 0.5)
    assert report.saturated_outputs == {"q": 1.0} and "maximum" in report.problems[0]
    assert inspect_outputs(saturated, [np.full((1, 8), -128, np.int8)], 0.5).ok  # the floor is normal
