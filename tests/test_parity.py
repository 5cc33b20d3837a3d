"""Parity with the Ultralytics reference predictions on every coco-val-mini image.

Criteria (issue: foundation): same number of detections per image, each matched with the same
class, box IoU >= 0.99, score within 1e-3; masks: mean IoU >= 0.97 and >= 90% of matches >= 0.9.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgeseg

from conftest import IMAGES, MODELS, REFERENCE, require_shared
from parity import Comparison, compare_image, load_reference

CASES = {
    # model file: (reference predictions, load options)
    "yolov8n-seg.onnx": ("yolov8n-seg", {}),
    "yolov8n-seg-e2e.onnx": ("yolov8n-seg-e2e", {}),
    "yolov8n-seg-dynamic.onnx": ("yolov8n-seg", {"rect": False}),  # same weights, forced to 640x640
    "yolo11n-seg-dynint8.onnx": ("yolo11n-seg-dynint8", {}),
    "yolov8n-seg-320-dynint8.onnx": ("yolov8n-seg-320-dynint8", {}),
    # LiteRT: int8 input and outputs decoded in the int8 domain; int8 inside with float I/O.
    "yolo11n-seg-int8.tflite": ("yolo11n-seg-int8", {}),
    "yolov8n-seg-int8-floatio.tflite": ("yolov8n-seg-int8-floatio", {}),
}


@pytest.mark.parametrize("model_file", sorted(CASES))
def test_matches_reference(model_file: str) -> None:
    require_shared()
    reference_name, options = CASES[model_file]
    model = edgeseg.load(MODELS / model_file, **options)
    reference = load_reference(REFERENCE / f"{reference_name}_conf0.25.json")
    images = sorted(IMAGES.glob("*.jpg"))
    assert len(images) == 79
    cmp = Comparison()
    for path in images:
        image_id = int(path.stem)
        result = model(path, conf=0.25, iou=0.7, max_det=300)
        compare_image(result.to_coco(image_id), reference.get(image_id, []), image_id, cmp)

    assert not cmp.count_mismatches, cmp.count_mismatches[:10]
    assert not cmp.unmatched, cmp.unmatched[:10]
    assert min(cmp.box_ious) >= 0.99, cmp.summary()
    assert max(cmp.score_errors) <= 1e-3, cmp.summary()
    mask_ious = np.array(cmp.mask_ious)
    assert mask_ious.mean() >= 0.97, cmp.summary()
    assert (mask_ious >= 0.9).mean() >= 0.90, cmp.summary()
