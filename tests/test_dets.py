"""The dets family (MMDeploy and torchvision end-to-end exports): loading with no configuration,
agreement with the numpy transcription of the official postprocess (tests/reference_dets.py) on
coco-val-mini (every fourth image; all 79 with EDGESEG_SLOW=1), almost-right layouts, and the core's
paste and crop functions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeseg
import reference_dets as ref
from edgeseg import _core
from edgeseg.errors import ModelError
from edgeseg.io import list_images, read_image

from conftest import IMAGES, MODELS, require_shared
from parity import box_iou

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dets"
RCNN = FIXTURES / "mmdet-maskrcnn"
FRAME = FIXTURES / "mmdet-rtmdet-ins"
TORCHVISION = FIXTURES / "torchvision-maskrcnn.onnx"
NAMES = [f"class{i}" for i in range(80)]
# Every coco-val-mini image with EDGESEG_SLOW=1 (minutes on a loaded 2-core machine); else every fourth.
SLOW = os.environ.get("EDGESEG_SLOW") == "1"


def load(path: Path, **kw: object) -> edgeseg.Model:
    return edgeseg.load(path, names=NAMES, **kw)


# ---- loading with no configuration ------------------------------------------------------------


def test_mmdeploy_work_dir_loads_with_its_sidecars() -> None:
    m = edgeseg.load(RCNN)  # the directory, no options
    s = m.spec
    assert (s.family, s.head) == ("dets", "dets_mmdeploy_roi")
    assert s.layout.convention == "mmdet" and s.layout.inclusive
    pre = s.preprocess
    assert (pre.resize, pre.pad_value, pre.rgb) == ("keep_ratio", None, True)
    assert pre.mean == (123.675, 116.28, 103.53) and pre.std == (58.395, 57.12, 57.375)
    d = s.defaults
    assert (d.conf, d.max_det, d.mask_threshold, d.iou) == (0.05, 100, 0.5, 0.5)
    assert "box-relative" in s.describe()


def test_rtmdet_work_dir_reads_its_own_preprocessing() -> None:
    s = edgeseg.load(FRAME).spec
    assert s.head == "dets_mmdeploy_frame"
    assert (s.preprocess.resize, s.preprocess.pad_value, s.preprocess.rgb) == ("keep_ratio", 114.0, False)
    assert s.preprocess.mean == (103.53, 116.28, 123.675)
    assert s.defaults.iou == 0.6  # from pipeline.json's nms


def test_torchvision_style_export_loads() -> None:
    s = edgeseg.load(TORCHVISION).spec
    assert s.head == "dets_torchvision_roi"
    assert s.layout.convention == "torchvision" and not s.layout.inclusive
    assert s.layout.scores_output is not None
    assert s.preprocess.scale_only and s.preprocess.rgb


def test_work_dir_without_sidecars_uses_mmdetection_defaults(tmp_path: Path) -> None:
    shutil.copy(RCNN / "end2end.onnx", tmp_path / "end2end.onnx")
    s = edgeseg.load(tmp_path, names=NAMES).spec
    assert s.head == "dets_mmdeploy_roi"  # 28x28 masks on a 320x320 input: box-relative
    assert s.preprocess.mean == (123.675, 116.28, 103.53) and s.preprocess.resize == "keep_ratio"
    assert (s.defaults.conf, s.defaults.max_det) == (0.05, 100)


def test_pipeline_with_a_transform_edgeseg_cannot_reproduce_is_refused(tmp_path: Path) -> None:
    for f in RCNN.iterdir():
        shutil.copy(f, tmp_path / f.name)
    text = (tmp_path / "pipeline.json").read_text().replace('"type": "Resize"', '"type": "RandomCrop"')
    (tmp_path / "pipeline.json").write_text(text)
    with pytest.raises(ModelError, match="RandomCrop"):
        edgeseg.load(tmp_path)


def test_head_forcing() -> None:
    assert edgeseg.load(RCNN, head="dets").spec.family == "dets"
    with pytest.raises(ModelError, match="not a yolo layout"):
        edgeseg.load(RCNN, head="yolo")
    m = load(RCNN, options={"paste": "torchvision"})
    assert m.spec.layout.convention == "torchvision"
    with pytest.raises(ModelError, match="do not match the input size"):
        load(RCNN, options={"masks": "frame"})


def test_yolo_model_is_not_a_dets_model() -> None:
    require_shared()
    with pytest.raises(ModelError, match="not a dets layout"):
        edgeseg.load(MODELS / "yolov8n-seg.onnx", head="dets")


# ---- agreement with the reference ------------------------------------------------------------


def _miou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.parametrize("path", [RCNN, FRAME, TORCHVISION], ids=lambda p: p.name)
def test_agrees_with_the_reference_on_coco_val_mini(path: Path) -> None:
    require_shared()
    model = load(path)
    lay, options = model.spec.layout, model.options()
    counts, box_ious, mask_ious = [], [], []
    for image_path in list_images(IMAGES)[:: 1 if SLOW else 4]:
        image = read_image(image_path)
        tensor, lbs = model.preprocess([image])
        out = model.infer(tensor)
        lb = lbs[0]
        inst = model.head(out, 0, lb, options)
        hw, resized = image.shape[:2], (lb.new_h, lb.new_w)
        if lay.exporter == "mmdeploy":
            boxes, scores, labels, full = ref.postprocess_mmdeploy(
                out[0][0], out[1][0], out[2][0], hw, resized, options.conf, options.max_det,
                options.mask_threshold, roi=lay.masks_kind == "roi",
            )  # fmt: skip
        else:
            boxes, scores, labels, full = ref.postprocess_torchvision(
                *out, hw, resized, options.conf, options.max_det, options.mask_threshold
            )
        assert len(inst.boxes) == len(boxes), image_path.name
        counts.append(len(boxes))
        np.testing.assert_array_equal(inst.class_ids, labels)
        np.testing.assert_array_equal(inst.scores, scores)  # the exporter's order, untouched
        dense = inst.masks.dense()
        for i in range(len(boxes)):
            ref_box = boxes[i]
            if not (ref_box[2] > ref_box[0] and ref_box[3] > ref_box[1]):
                # A box-free row: edgeseg boxes it by its mask's extent.
                ys, xs = np.nonzero(full[i])
                ref_box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32) if len(xs) else ref_box
            if ref_box[2] > ref_box[0] and ref_box[3] > ref_box[1]:
                box_ious.append(box_iou(ref_box[None], inst.boxes[i : i + 1])[0, 0])
            mask_ious.append(_miou(full[i], dense[i]))
            assert inst.masks.areas()[i] == dense[i].sum()
    assert min(box_ious) >= 0.99
    # RoI masks are pasted pixel for pixel as the references do; full-frame masks lose only the few
    # pixels a model puts more than a pixel outside its box.
    assert np.mean(mask_ious) >= (0.999 if lay.masks_kind == "roi" else 0.97)
    # Non-degenerate fixtures: several to dozens of detections per image, not constant.
    assert 5 <= np.median(counts) <= 100 and len(set(counts)) > 3


def test_fixture_boxes_reach_the_image_borders() -> None:
    require_shared()
    model = load(RCNN)
    touches = 0
    for image_path in list_images(IMAGES)[:10]:
        r = model(image_path)
        h, w = r.image_shape
        touches += int(
            np.sum((r.boxes[:, 0] <= 0) | (r.boxes[:, 1] <= 0) | (r.boxes[:, 2] >= w) | (r.boxes[:, 3] >= h))
        )
        widths = r.boxes[:, 2] - r.boxes[:, 0]
        assert widths.max() > 4 * widths.min()  # varied sizes
    assert touches >= 10


def test_thresholds_classes_and_max_det_keep_the_exporter_order() -> None:
    require_shared()
    model = load(RCNN)
    image = list_images(IMAGES)[0]
    everything = model(image, conf=0.0)
    some = model(image, conf=0.2)
    assert 0 < len(some) < len(everything)
    assert np.all(np.diff(everything.scores) <= 0)  # sorted by the graph's TopK
    first = model(image, max_det=3)
    np.testing.assert_array_equal(first.scores, model(image).scores[:3])
    cls = int(everything.class_ids[0])
    only = model(image, conf=0.0, classes=[cls])
    assert len(only) and set(only.class_ids.tolist()) == {cls}


# ---- almost right layouts -----------------------------------------------------------------------


def _constant_model(path: Path, outputs: dict[str, np.ndarray]) -> Path:
    """An ONNX model with one [1, 3, 64, 64] image input whose outputs are these constants."""
    nodes, infos, inits = [], [], []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value, f"{name}_value"))
        nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
        dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
        infos.append(helper.make_tensor_value_info(name, dtype, list(value.shape)))
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph(nodes, "g", [image], infos, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def _dets(k: int, cols: int = 5) -> np.ndarray:
    d = np.zeros((1, k, cols), np.float32)
    d[0, :, :4] = [4, 4, 40, 40]
    if cols > 4:
        d[0, :, 4] = 0.9
    return d


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (
            {"dets": _dets(10), "labels": np.zeros((1, 10), np.int64), "masks": np.zeros((1, 8, 28, 28), np.float32)},
            r"different numbers of detections.*dets \[1, 10, 5\].*masks \[1, 8, 28, 28\]",
        ),
        ({"dets": _dets(10), "masks": np.zeros((1, 10, 28, 28), np.float32)}, r"dets.*masks.*no labels"),
        ({"dets": _dets(10), "labels": np.zeros((1, 10), np.int64)}, r"no masks"),
        (
            {
                "dets": _dets(10, 4),
                "labels": np.zeros((1, 10), np.int64),
                "masks": np.zeros((1, 10, 28, 28), np.float32),
            },
            r"dets \[1, 10, 4\] has 4 columns; expected 5",
        ),
        (
            {
                "boxes": np.zeros((6, 4), np.float32),
                "labels": np.zeros(6, np.int64),
                "scores": np.zeros(6, np.float32),
                "masks": np.zeros((6, 2, 28, 28), np.float32),
            },
            r"masks \[6, 2, 28, 28\] should have one channel",
        ),
        (
            {
                "boxes": np.zeros((6, 4), np.float32),
                "labels": np.zeros(6, np.int64),
                "scores": np.zeros(5, np.float32),
                "masks": np.zeros((6, 1, 28, 28), np.float32),
            },
            r"different numbers of detections.*scores \[5\]",
        ),
        (
            {"dets": _dets(4), "labels": np.zeros((1, 4), np.int64), "masks": np.zeros((1, 4, 28, 30), np.float32)},
            r"cannot tell whether masks masks \[1, 4, 28, 30\]",
        ),
    ],
    ids=[
        "masks-count",
        "labels-missing",
        "masks-missing",
        "dets-4-columns",
        "tv-2-channels",
        "tv-scores-count",
        "odd-masks",
    ],
)
def test_almost_right_layouts_name_the_tensors(tmp_path: Path, outputs: dict, message: str) -> None:
    path = _constant_model(tmp_path / "m.onnx", outputs)
    with pytest.raises(ModelError, match=message):
        edgeseg.load(path, names=NAMES)


def test_constant_model_decodes(tmp_path: Path) -> None:
    labels = np.array([[3, 7]], np.int64)
    masks = np.zeros((1, 2, 28, 28), np.float32)
    masks[0, :, 7:21, 7:21] = 0.9
    dets = _dets(2)
    dets[0, 1, 4] = 0.01  # below the default 0.05
    path = _constant_model(tmp_path / "m.onnx", {"dets": dets, "labels": labels, "masks": masks})
    m = edgeseg.load(path, names=NAMES)
    r = m(np.zeros((64, 64, 3), np.uint8))
    assert len(r) == 1 and r.class_ids.tolist() == [3]
    assert 0 < r.masks.areas()[0] < 36 * 36


def test_labels_outside_the_classes_are_an_error(tmp_path: Path) -> None:
    path = _constant_model(
        tmp_path / "m.onnx",
        {"dets": _dets(2), "labels": np.array([[3, 95]], np.int64), "masks": np.zeros((1, 2, 28, 28), np.float32)},
    )
    m = edgeseg.load(path, names=NAMES)
    with pytest.raises(ModelError, match="labels holds class 95, outside the model's 80 classes"):
        m(np.zeros((64, 64, 3), np.uint8))


# ---- the core functions ------------------------------------------------------------------------


def _unpack(ms: object, i: int, hw: tuple[int, int]) -> np.ndarray:
    x0, y0, w, h = ms.rects[i]
    full = np.zeros(hw, bool)
    if w and h:
        packed = ms.bits[ms.offsets[i] : ms.offsets[i + 1]].reshape(h, (w + 7) // 8)
        full[y0 : y0 + h, x0 : x0 + w] = np.unpackbits(packed, axis=1, count=w, bitorder="little")
    return full


@pytest.mark.parametrize("convention", ["mmdet", "torchvision"])
def test_paste_matches_the_reference_pixel_for_pixel(convention: str) -> None:
    rng = np.random.default_rng(3)
    hw = (97, 131)
    y, x = np.mgrid[0:28, 0:28] / 27.0
    masks = np.stack([np.clip(1.2 - 2 * np.hypot(x - a, y - b), 0, 1) for a, b in rng.uniform(0.2, 0.8, (40, 2))])
    masks = masks.astype(np.float32)
    xy = rng.uniform(-10, 120, (40, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.3, 90, (40, 2))], 1).astype(np.float32)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, hw[1])
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, hw[0])
    boxes[5, 2] = boxes[5, 0]  # zero width: an empty crop, the detection kept
    rows = np.arange(40)[::-1].copy()
    ms = _core.paste_roi_masks(masks, rows, boxes, hw, convention, 0.5, soft=True)
    paste = ref.mmdet_paste if convention == "mmdet" else ref.torchvision_paste
    assert ms.keep.tolist() == list(range(40))
    for i in range(40):
        np.testing.assert_array_equal(_unpack(ms, i, hw), paste(masks[rows[i]], boxes[i], hw), err_msg=str(i))
    assert ms.rects[5, 2] == 0 and ms.areas[5] == 0
    assert ms.probs is not None and len(ms.probs) == int((ms.rects[:, 2].astype(int) * ms.rects[:, 3]).sum())


def test_crop_frame_masks_boxes_free_rows_by_their_mask() -> None:
    lb = _core.make_letterbox(48, 64, 32, 32, "keep_ratio")  # content 24x32, padded below
    masks = np.zeros((2, 32, 32), bool)
    masks[0, 2:10, 3:12] = True
    masks[1, 5:20, 10:30] = True
    boxes = np.array([[0, 0, 0, 0], [12, 6, 44, 30]], np.float32)  # source pixels; the first box-free
    ms = _core.crop_frame_masks(masks, np.array([0, 1]), boxes, lb)
    full = ref.frame_masks(masks, (48, 64), (lb.new_h, lb.new_w))
    np.testing.assert_array_equal(_unpack(ms, 0, (48, 64)), full[0])
    x0, y0, w, h = ms.rects[0]
    ys, xs = np.nonzero(full[0])
    assert (x0, y0, x0 + w, y0 + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    inside = np.zeros((48, 64), bool)
    inside[5:31, 11:45] = True  # the box grown by a pixel
    np.testing.assert_array_equal(_unpack(ms, 1, (48, 64)), full[1] & inside)


def test_core_rejects_bad_arguments() -> None:
    masks = np.zeros((2, 28, 28), np.float32)
    boxes = np.array([[0, 0, 10, 10]], np.float32)
    with pytest.raises(ValueError, match="outside the 2 masks"):
        _core.paste_roi_masks(masks, np.array([2]), boxes, (20, 20))
    with pytest.raises(ValueError, match="NaN"):
        _core.paste_roi_masks(masks, np.array([0]), np.full((1, 4), np.nan, np.float32), (20, 20))
    with pytest.raises(ValueError, match="convention"):
        _core.paste_roi_masks(masks, np.array([0]), boxes, (20, 20), "detectron")
    with pytest.raises(ValueError, match="same length"):
        _core.paste_roi_masks(masks, np.array([0, 1]), boxes, (20, 20))
    lb = _core.make_letterbox(20, 20, 32, 32, "keep_ratio")
    with pytest.raises(ValueError, match="do not match the model input"):
        _core.crop_frame_masks(masks, np.array([0]), boxes, lb)


def test_torchvision_pasted_masks_are_cropped(tmp_path: Path) -> None:
    masks = np.zeros((2, 1, 64, 64), np.float32)
    masks[0, 0, 10:30, 12:40] = 0.8
    masks[1, 0, 40:60, 5:25] = 0.5  # exactly the threshold: torchvision keeps only > 0.5
    boxes = np.array([[12, 10, 40, 30], [5, 40, 25, 60]], np.float32)
    outputs = {
        "boxes": boxes,
        "labels": np.array([1, 2], np.int64),
        "scores": np.array([0.9, 0.8], np.float32),
        "masks": masks,
    }
    m = edgeseg.load(_constant_model(tmp_path / "m.onnx", outputs), names=NAMES)
    assert m.spec.head == "dets_torchvision_frame"
    r = m(np.zeros((64, 64, 3), np.uint8))  # the input size: no resize
    assert r.masks.areas().tolist() == [20 * 28, 0]
    np.testing.assert_array_equal(r.masks.dense()[0], masks[0, 0] > 0.5)


def test_unnamed_outputs_are_read_by_their_shapes(tmp_path: Path) -> None:
    masks = np.zeros((1, 3, 28, 28), np.float32)
    outputs = {"out0": _dets(3), "out1": np.array([[0, 1, 2]], np.int64), "out2": masks}
    m = edgeseg.load(_constant_model(tmp_path / "m.onnx", outputs), names=NAMES)
    assert m.spec.head == "dets_mmdeploy_roi"
    bad = {"out0": _dets(3), "out1": np.array([[0, 1, 2]], np.int64), "out2": np.zeros((1, 2, 28, 28), np.float32)}
    with pytest.raises(ModelError, match="different numbers of detections"):
        edgeseg.load(_constant_model(tmp_path / "bad.onnx", bad), names=NAMES)
