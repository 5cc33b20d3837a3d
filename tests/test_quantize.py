"""edgeseg quantize on the real FP32 model with a small calibration set: it loads, keeps the head in
float, stays healthy and predicts what the FP32 model predicts (a CI-sized smoke parity check; the
full accuracy and speed comparison is benchmarks/quantize.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg.cli import main
from edgeseg.health import check_model

from conftest import IMAGES, MODELS, require_shared
from parity import box_iou

FP32 = MODELS / "yolov8n-seg.onnx"


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_shared()
    out = tmp_path_factory.mktemp("q") / "yolov8n-seg-int8.onnx"
    assert main(["quantize", str(FP32), "--calib", str(IMAGES), "--calib-size", "8", "-o", str(out), "-q"]) == 0
    return out


def test_quantized_model_loads_with_metadata_and_is_healthy(int8_model: Path) -> None:
    import onnx

    model = edgeseg.load(int8_model)
    assert model.spec.names == edgeseg.load(FP32).spec.names and model.spec.head == "yolo"
    assert check_model(model).ok
    graph = onnx.load(str(int8_model)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    # The head's final concatenation (boxes in pixels with scores in 0..1) is not quantized.
    producer = {o: n for n in graph.node for o in n.output}
    assert producer[graph.output[0].name].op_type == "Concat"
    consumers_of_output = [n for n in graph.node if graph.output[0].name in n.input]
    assert not consumers_of_output
    assert int8_model.stat().st_size < FP32.stat().st_size / 2


def test_quantized_model_predicts_like_fp32(int8_model: Path) -> None:
    fp32, int8 = edgeseg.load(FP32), edgeseg.load(int8_model)
    matched, total = 0, 0
    for path in sorted(IMAGES.glob("*.jpg"))[:8]:
        a, b = fp32(path, conf=0.4), int8(path, conf=0.25)
        total += len(a)
        if not len(a) or not len(b):
            continue
        ious = box_iou(a.boxes, b.boxes)
        for i in range(len(a)):
            same = np.nonzero(b.class_ids == a.class_ids[i])[0]
            matched += bool(len(same)) and ious[i, same].max() > 0.8
    assert total > 10 and matched >= 0.8 * total, (matched, total)


def test_symmetric_int8_activations(tmp_path: Path) -> None:
    require_shared()
    from edgeseg.quantize import quantize

    out = tmp_path / "s8.onnx"
    quantize(FP32, IMAGES, out, calib_size=4, progress=False, activations="int8")
    model = edgeseg.load(out)
    assert check_model(model).ok
    assert len(model(sorted(IMAGES.glob("*.jpg"))[0])) > 0
    with pytest.raises(ValueError, match="activations"):
        quantize(FP32, IMAGES, out, activations="int4")


def test_quantize_errors(tmp_path: Path) -> None:
    require_shared()
    with pytest.raises(edgeseg.ModelError, match=r"FP32 \.onnx"):
        from edgeseg.quantize import quantize

        quantize(MODELS / "yolo11n-seg-int8.tflite", IMAGES, tmp_path / "x.onnx")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["quantize", str(FP32), "--calib", str(empty), "-o", str(tmp_path / "x.onnx"), "-q"]) == 2
