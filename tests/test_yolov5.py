"""YOLOv5-seg / YOLOv7-seg (anchor-based, objectness), YOLO26-seg end-to-end and YOLOv9 gelan-c-seg layouts: they
load with no configuration, and the YOLOv5 head agrees with ``reference_yolov5`` (a numpy transcription of
YOLOv5's predict postprocess) on coco-val-mini images through the layout fixtures of
``fixtures/make_yolov5.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import edgeseg
import reference_yolov5
from edgeseg import _core
from edgeseg.coco import COCO80_NAMES, COCO80_TO_91
from edgeseg.errors import ModelError
from edgeseg.io import read_image

from conftest import IMAGES, require_shared
from parity import Comparison, compare_image

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "yolov5"
V5 = FIXTURES / "yolov5n-seg-160.onnx"
V5_TFLITE = FIXTURES / "yolov5n-seg-160-tflite-layout.onnx"
YOLO26 = FIXTURES / "yolo26n-seg-160-e2e.onnx"
GELAN = FIXTURES / "gelan-c-seg-160.onnx"
NUM_IMAGES = 79  # every coco-val-mini image (the fixtures are 160 px: a few seconds)


def test_yolov5_loads_with_no_configuration() -> None:
    model = edgeseg.load(V5)
    spec = model.spec
    assert (spec.family, spec.head) == ("yolo", "yolov5")
    assert spec.layout.objectness and spec.layout.detections_anchor_major and not spec.layout.boxes_normalized
    assert spec.names == COCO80_NAMES and spec.imgsz == (160, 160)
    assert (spec.defaults.conf, spec.defaults.iou, spec.defaults.max_det) == (0.25, 0.45, 1000)
    assert "objectness" in spec.describe()


def test_yolov5_tflite_layout_loads_from_its_anchor_count() -> None:
    """NHWC input, normalized boxes, NCHW prototypes and no metadata: 1575 = 3 x (20x20 + 10x10 + 5x5) anchors
    tell the 117 features apart from a YOLOv8 head's."""
    spec = edgeseg.load(V5_TFLITE).spec
    assert spec.head == "yolov5" and spec.input_layout == "NHWC"
    assert spec.layout.boxes_normalized and not spec.layout.prototypes_nhwc
    assert spec.num_classes == 80


def _reference(model: edgeseg.Model, outputs: list[np.ndarray], lb, **kwargs) -> reference_yolov5.Prediction:
    """``reference_yolov5`` on the raw outputs, as YOLOv5's DetectMultiBackend hands them to its postprocess
    (TFLite: boxes multiplied by the input size)."""
    layout = model.spec.layout
    det = np.array(outputs[layout.detections_output][0], np.float32)
    if layout.boxes_normalized:
        det[:, [0, 2]] *= np.float32(lb.dst_w)
        det[:, [1, 3]] *= np.float32(lb.dst_h)
    protos = np.asarray(outputs[layout.prototypes_output][0], np.float32)
    return reference_yolov5.postprocess(det, protos, (lb.dst_h, lb.dst_w), (lb.src_h, lb.src_w), **kwargs)


@pytest.mark.parametrize("path", [V5, V5_TFLITE], ids=lambda p: p.stem)
def test_yolov5_matches_transcription(path: Path) -> None:
    """Same detections (NMS, scores, classes) and masks as YOLOv5's postprocess, with the letterbox inverted
    exactly (``geometry="exact"``); YOLOv5's own approximate inverse is measured and printed (pytest -s): at
    this fixture's 160 x 160 input a prototype pixel is 4 input pixels, so its misplacement is 4x larger than
    at 640."""
    require_shared()
    model = edgeseg.load(path)
    options = model.options()
    exact, as_yolov5 = Comparison(), Comparison()
    detections = empty = 0
    for image in sorted(IMAGES.glob("*.jpg"))[:NUM_IMAGES]:
        image_id = int(image.stem)
        tensor, letterboxes = model.preprocess([read_image(image)])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, letterboxes, options)[0].to_coco(image_id)
        ref = _reference(model, outputs, letterboxes[0], geometry="exact")
        compare_image(ours, ref.to_coco(image_id, COCO80_TO_91), image_id, exact)
        faithful = _reference(model, outputs, letterboxes[0], drop_empty=False)
        compare_image(ours, faithful.to_coco(image_id, COCO80_TO_91), image_id, as_yolov5)
        detections += len(ref.scores)
        empty += len(faithful.scores) - len(ref.scores)
    print(f"\n{path.name}: {detections} detections on {NUM_IMAGES} images ({empty} more with empty masks)")
    print(f"  exact geometry: {exact.summary()}\n  YOLOv5 geometry: {as_yolov5.summary()}")
    assert detections >= 5 * NUM_IMAGES, "the fixture should give several detections per image"
    assert not exact.count_mismatches and not exact.unmatched, exact.summary()
    assert min(exact.box_ious) >= 0.99, exact.summary()
    assert max(exact.score_errors) <= 1e-5, exact.summary()
    assert np.mean(exact.mask_ious) >= 0.97, exact.summary()


def test_core_objectness_decoder_matches_numpy() -> None:
    """``decode_yolo(objectness=True)`` keeps the transcription's detections (input pixels, before scaling),
    float and int8 alike (int8: both read the same dequantized values)."""
    rng = np.random.default_rng(3)
    n, nc, nm = 600, 5, 4
    pred = np.empty((n, 5 + nc + nm), np.float32)
    pred[:, :2] = rng.uniform(0, 160, (n, 2))
    pred[:, 2:4] = rng.uniform(5, 60, (n, 2))
    pred[:, 4 : 5 + nc] = rng.uniform(0, 1, (n, 1 + nc))
    pred[:, 5 + nc :] = rng.normal(size=(n, nm))
    ref = reference_yolov5.non_max_suppression(pred, nm)
    d = _core.decode_yolo(pred.T, nc, 0.25, 0.45, 1000, 30000, False, objectness=True)
    assert len(d.scores) == len(ref) > 10
    np.testing.assert_allclose(d.boxes, ref[:, :4], atol=1e-4)
    np.testing.assert_array_equal(d.scores, ref[:, 4])
    np.testing.assert_array_equal(d.class_ids, ref[:, 5])
    rows = pred[_anchors_of(pred, d.boxes)]
    np.testing.assert_array_equal(d.coefficients, rows[:, 5 + nc :])  # edgeseg keeps them as the model gave them
    np.testing.assert_allclose(ref[:, 6:], rows[:, 5 + nc :] * rows[:, 4:5], rtol=1e-6)  # YOLOv5 scales by obj

    scale = 1 / 127
    q = np.clip(np.round(pred / scale), -128, 127).astype(np.int8)
    q[:, :4] = np.clip(np.round(pred[:, :4] / 160 / scale), -128, 127)  # normalized boxes, one shared scale
    deq = q.astype(np.float32) * np.float32(scale)
    deq[:, :4] *= np.float32(160)
    ref = reference_yolov5.non_max_suppression(deq, nm)
    d = _core.decode_yolo(q.T, nc, 0.25, 0.45, 1000, 30000, False, quant=(scale, 0), box_scale=(160.0, 160.0),
                          objectness=True)  # fmt: skip
    assert len(d.scores) == len(ref) > 10
    np.testing.assert_allclose(d.boxes, ref[:, :4], atol=1e-3)
    np.testing.assert_allclose(d.scores, ref[:, 4], rtol=1e-6)
    np.testing.assert_array_equal(d.class_ids, ref[:, 5])


def _anchors_of(pred: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Rows of ``pred`` whose decoded box is each of ``boxes``."""
    xyxy = np.concatenate([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)
    return np.array([int(np.abs(xyxy - b).sum(1).argmin()) for b in boxes], np.int64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[:4], r"features per anchor; expected at least 4 box \+ 1 objectness"),
        (lambda p: p.astype(np.float32) * 2, "above 1"),
    ],
)
def test_core_objectness_decoder_rejects_bad_input(change, message: str) -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.3, 1, (5 + 3 + 2, 50)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        _core.decode_yolo(change(pred), 3, 0.25, 0.45, 100, 1000, False, objectness=True)


def test_core_objectness_nan_is_an_error() -> None:
    pred = np.full((5 + 3 + 2, 50), 0.5, np.float32)
    pred[4, 7] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        _core.decode_yolo(pred, 3, 0.25, 0.45, 100, 1000, False, objectness=True)


def _reshaped_output0(src: Path, dst: Path, op: str, values: list[int], drop_metadata: bool = False) -> Path:
    """``src`` with one node after output0: ``Pad`` (``values``: the pads) or ``Slice`` (starts, ends, axes)."""
    model = onnx.load(str(src))
    for node in model.graph.node:
        node.output[:] = ["output0_inner" if o == "output0" else o for o in node.output]
    names = ["pads"] if op == "Pad" else ["starts", "ends", "axes"]
    chunks = [values] if op == "Pad" else [values[i : i + 1] for i in range(3)]
    for name, chunk in zip(names, chunks):
        tensor = onnx.helper.make_tensor(f"output0_{name}", onnx.TensorProto.INT64, [len(chunk)], chunk)
        model.graph.initializer.append(tensor)
    model.graph.node.append(onnx.helper.make_node(op, ["output0_inner", *(f"output0_{n}" for n in names)], ["output0"]))
    model.graph.output[0].type.tensor_type.ClearField("shape")
    if drop_metadata:
        del model.metadata_props[:]
    onnx.save(model, str(dst))
    return dst


def test_almost_right_yolov5_layout_is_a_clear_error(tmp_path: Path) -> None:
    """118 features fit neither 5 + 80 + 32 nor 4 + 80 + 32 with the metadata's 80 names."""
    bad = _reshaped_output0(V5, tmp_path / "bad.onnx", "Pad", [0, 0, 0, 0, 0, 1])
    with pytest.raises(ModelError, match="output0"):
        edgeseg.load(bad)


def test_ambiguous_anchor_count_without_metadata_is_an_error(tmp_path: Path) -> None:
    """No names and an anchor count that is neither 3 anchors per cell nor one: refused, not guessed."""
    odd = _reshaped_output0(V5_TFLITE, tmp_path / "odd.onnx", "Slice", [0, 1000, 1])
    with pytest.raises(ModelError, match="cannot tell whether output output0"):
        edgeseg.load(odd)


def test_yolo26_end_to_end_loads_and_decodes() -> None:
    """YOLO26-seg's [1, 300, 38] one-to-one output (top-k, no NMS) is the ``yolo_e2e`` layout."""
    require_shared()
    model = edgeseg.load(YOLO26)
    spec = model.spec
    assert (spec.family, spec.head) == ("yolo", "yolo_e2e") and spec.num_classes == 80
    assert (spec.defaults.conf, spec.defaults.iou, spec.defaults.max_det) == (0.25, 0.7, 300)
    image = sorted(IMAGES.glob("*.jpg"))[0]
    tensor, letterboxes = model.preprocess([read_image(image)])
    outputs = model.infer(tensor)
    result = model.postprocess(outputs, letterboxes, model.options())[0]
    rows = outputs[0][0]
    expected = rows[rows[:, 4] > 0.25, 4]  # rows above conf, in the graph's order (less those with empty masks)
    assert 0 < len(result.scores) <= len(expected)
    where = [int(np.flatnonzero(expected == s)[0]) for s in result.scores]
    assert where == sorted(where)


def test_gelan_c_seg_loads_as_the_raw_v8_layout() -> None:
    require_shared()
    model = edgeseg.load(GELAN)
    spec = model.spec
    assert (spec.family, spec.head) == ("yolo", "yolo") and spec.num_classes == 80
    assert not spec.layout.objectness and not spec.layout.detections_anchor_major
    image = sorted(IMAGES.glob("*.jpg"))[1]
    result = model(image)
    assert len(result.scores) > 0
