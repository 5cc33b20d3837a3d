"""Parity with the Ultralytics reference predictions on every coco-val-mini image.

Criteria (issue: foundation): same number of detections per image, each matched with the same
class, box IoU >= 0.99, score within 1e-3; masks: mean IoU >= 0.97 and >= 90% of matches >= 0.9.

Float models are held to these criteria against the stored reference predictions. The int8 models'
raw outputs depend on the CPU: the runtimes' int8 kernels (ONNX Runtime's ConvInteger, LiteRT/XNNPACK)
take different paths on AVX2 and AVX-512 (VNNI) CPUs, and the stored references were made on an
AVX-512 VNNI one, so on an AVX2 machine a few scores move by up to ~0.05 and detections near the
thresholds come and go although edgeseg's postprocess is right. For those models the exact check is
edgeseg against ``reference_yolo`` (a numpy transcription of the Ultralytics postprocess, itself held to
the stored reference on the float model here) run on the same raw outputs on this machine, with the
criteria above; against the stored reference they only need to agree loosely (same class, box IoU >= 0.9
for >= 95% of its detections), which holds on both kinds of CPU and still fails for a broken model.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgeseg
import reference_yolo
from edgeseg.coco import COCO80_TO_91
from edgeseg.io import read_image

from conftest import IMAGES, MODELS, REFERENCE, require_shared
from parity import Comparison, compare_image, count_loose_matches, load_reference

CASES = {
    # model file: (reference predictions, load options)
    "yolov8n-seg.onnx": ("yolov8n-seg", {}),
    "yolov8n-seg-e2e.onnx": ("yolov8n-seg-e2e", {}),
    "yolov8n-seg-dynamic.onnx": ("yolov8n-seg", {"rect": False}),  # same weights, forced to 640x640
}
INT8_CASES = {
    # ONNX Runtime dynamic int8 (ConvInteger): float outputs
    "yolo11n-seg-dynint8.onnx": "yolo11n-seg-dynint8",
    "yolov8n-seg-320-dynint8.onnx": "yolov8n-seg-320-dynint8",
    # LiteRT: int8 input and outputs decoded in the int8 domain; int8 inside with float I/O.
    "yolo11n-seg-int8.tflite": "yolo11n-seg-int8",
    "yolov8n-seg-int8-floatio.tflite": "yolov8n-seg-int8-floatio",
}
LOOSE_MIN_MATCHED = 0.95  # measured on AVX2: >= 0.98 for every int8 model (1.0 for three of them)
SETTINGS = {"conf": 0.25, "iou": 0.7, "max_det": 300}


def assert_parity(cmp: Comparison) -> None:
    assert not cmp.count_mismatches, cmp.count_mismatches[:10]
    assert not cmp.unmatched, cmp.unmatched[:10]
    assert min(cmp.box_ious) >= 0.99, cmp.summary()
    assert max(cmp.score_errors) <= 1e-3, cmp.summary()
    mask_ious = np.array(cmp.mask_ious)
    assert mask_ious.mean() >= 0.97, cmp.summary()
    assert (mask_ious >= 0.9).mean() >= 0.90, cmp.summary()


def image_paths() -> list:
    images = sorted(IMAGES.glob("*.jpg"))
    assert len(images) == 79
    return images


def transcribed(model: edgeseg.Model, outputs: list[np.ndarray], index: int, lb) -> reference_yolo.Prediction:
    """``reference_yolo`` on image ``index`` of a batch's raw outputs, brought to what Ultralytics' AutoBackend
    hands its postprocess: dequantized float32, detections [features, anchors] with boxes in input pixels,
    prototypes [nm, mh, mw]."""
    layout, specs = model.spec.layout, model.spec.outputs
    det = specs[layout.detections_output].dequantize(outputs[layout.detections_output][index])
    det = np.array(det.T if layout.detections_anchor_major else det, np.float32)
    if layout.boxes_normalized:  # TFLite exports: x, w by the input width, y, h by its height
        det[[0, 2]] *= np.float32(lb.dst_w)
        det[[1, 3]] *= np.float32(lb.dst_h)
    protos = specs[layout.prototypes_output].dequantize(outputs[layout.prototypes_output][index])
    protos = np.asarray(protos.transpose(2, 0, 1) if layout.prototypes_nhwc else protos, np.float32)
    return reference_yolo.postprocess(
        det, protos, (lb.dst_h, lb.dst_w), (lb.src_h, lb.src_w), model.spec.num_classes, **SETTINGS
    )


@pytest.mark.parametrize("model_file", sorted(CASES))
def test_matches_reference(model_file: str) -> None:
    require_shared()
    reference_name, options = CASES[model_file]
    model = edgeseg.load(MODELS / model_file, **options)
    reference = load_reference(REFERENCE / f"{reference_name}_conf0.25.json")
    cmp = Comparison()
    for path in image_paths():
        image_id = int(path.stem)
        result = model(path, **SETTINGS)
        compare_image(result.to_coco(image_id), reference.get(image_id, []), image_id, cmp)
    assert_parity(cmp)


def test_transcription_matches_reference() -> None:
    """The transcription, on the float model's raw outputs, meets the parity criteria against the stored
    Ultralytics predictions: what makes it a reference for the int8 models."""
    require_shared()
    model = edgeseg.load(MODELS / "yolov8n-seg.onnx")
    reference = load_reference(REFERENCE / "yolov8n-seg_conf0.25.json")
    cmp = Comparison()
    for path in image_paths():
        image_id = int(path.stem)
        tensor, letterboxes = model.preprocess([read_image(path)])
        pred = transcribed(model, model.infer(tensor), 0, letterboxes[0])
        compare_image(pred.to_coco(image_id, COCO80_TO_91), reference.get(image_id, []), image_id, cmp)
    assert_parity(cmp)


@pytest.mark.parametrize("model_file", sorted(INT8_CASES))
def test_int8_matches_transcription(model_file: str) -> None:
    require_shared()
    model = edgeseg.load(MODELS / model_file)
    reference = load_reference(REFERENCE / f"{INT8_CASES[model_file]}_conf0.25.json")
    options = model.options(**SETTINGS)
    exact, stored = Comparison(), Comparison()
    matched = total = images_as_stored = 0
    for path in image_paths():
        image_id = int(path.stem)
        tensor, letterboxes = model.preprocess([read_image(path)])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, letterboxes, options)[0].to_coco(image_id)
        pred = transcribed(model, outputs, 0, letterboxes[0])
        compare_image(ours, pred.to_coco(image_id, COCO80_TO_91), image_id, exact)

        ref = reference.get(image_id, [])
        one = Comparison()
        compare_image(ours, ref, image_id, one)
        compare_image(ours, ref, image_id, stored)
        images_as_stored += not (one.count_mismatches or one.unmatched or min(one.box_ious, default=1) < 0.99)
        matched += count_loose_matches(ours, ref)
        total += len(ref)

    # Where this CPU reproduces the stored raw outputs the stored comparison is exact too (all 79 images on
    # the AVX-512 VNNI machine that made them); reported (pytest -s), not asserted: it depends on the CPU.
    print(f"{model_file} vs stored reference: {images_as_stored}/79 images exact; {stored.summary()}")
    assert_parity(exact)
    assert total and matched / total >= LOOSE_MIN_MATCHED, (
        f"{matched}/{total} stored detections matched (class, box IoU >= 0.9); {stored.summary()}"
    )
