"""The public API on real models and images: inputs, batching, rect letterbox, threads, Result, spec."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.coco import COCO80_NAMES, COCO80_TO_91

from conftest import IMAGES, MODELS, require_shared
from parity import box_iou

IMAGE = "000000000139.jpg"  # 426x640, ten detections of seven classes with the default thresholds
SAME_SHAPE = ["000000018575.jpg", "000000073326.jpg", "000000106235.jpg"]  # all 480x640
MIXED = ["000000000139.jpg", "000000000802.jpg", "000000011813.jpg"]  # 426x640, 640x424, 500x333
THREADED = ["000000000139.jpg", "000000000802.jpg", "000000018575.jpg", "000000022192.jpg"]


@pytest.fixture(scope="module")
def model() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(MODELS / "yolov8n-seg.onnx")


@pytest.fixture(scope="module")
def dynamic() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(MODELS / "yolov8n-seg-dynamic.onnx")  # rect=True by default


@pytest.fixture(scope="module")
def dynamic_square(dynamic: edgeseg.Model) -> edgeseg.Model:
    return edgeseg.Model(dynamic.runtime, dynamic.spec, rect=False)


@pytest.fixture(scope="module")
def image_path() -> Path:
    require_shared()
    return IMAGES / IMAGE


@pytest.fixture(scope="module")
def result(model: edgeseg.Model, image_path: Path) -> edgeseg.Result:
    return model(image_path, soft_masks=True)


def assert_same(a: edgeseg.Result, b: edgeseg.Result, atol: float = 0.0) -> None:
    assert a.image_shape == b.image_shape
    assert len(a) == len(b), (a, b)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=atol, rtol=0)
    np.testing.assert_allclose(a.scores, b.scores, atol=max(atol, 1e-6), rtol=0)
    if atol == 0.0:
        np.testing.assert_array_equal(a.masks.rects, b.masks.rects)
        np.testing.assert_array_equal(a.masks.data, b.masks.data)


# ------------------------------------------------------------------------------------- inputs


def test_path_bgr_rgb_give_same_result(model: edgeseg.Model, image_path: Path) -> None:
    from_path = model(image_path)
    assert len(from_path) > 0
    assert from_path.path == image_path
    bgr = cv2.imread(str(image_path))
    from_bgr = model(bgr)
    assert from_bgr.path is None
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    from_rgb = model(rgb, rgb=True)
    assert_same(from_path, from_bgr)
    assert_same(from_path, from_rgb)
    assert_same(from_path, model(str(image_path)))
    # rgb=True on a BGR array swaps the channels: a different input, so (almost surely) other scores
    swapped = model(bgr, rgb=True)
    assert len(swapped) != len(from_path) or not np.allclose(swapped.scores, from_path.scores)


def test_list_gives_list(model: edgeseg.Model) -> None:
    paths = [IMAGES / name for name in MIXED]
    results = model(paths)
    assert isinstance(results, list) and len(results) == 3
    for path, res in zip(paths, results):
        assert isinstance(res, edgeseg.Result)
        assert res.path == path
        assert_same(res, model(path))
    single = model([paths[0]])
    assert isinstance(single, list) and len(single) == 1


def test_dynamic_batch_same_shape_equals_one_by_one(dynamic: edgeseg.Model) -> None:
    paths = [IMAGES / name for name in SAME_SHAPE]
    assert dynamic.input_size([(480, 640)] * 3) == (480, 640)  # rect: one shape, no square padding
    batched = dynamic(paths)
    assert len(batched) == 3
    for path, res in zip(paths, batched):
        assert res.image_shape == (480, 640)
        assert_same(res, dynamic(path), atol=1e-3)


def test_dynamic_batch_mixed_shapes_equals_square_one_by_one(
    dynamic: edgeseg.Model, dynamic_square: edgeseg.Model, model: edgeseg.Model
) -> None:
    paths = [IMAGES / name for name in MIXED]
    shapes = [cv2.imread(str(p)).shape[:2] for p in paths]
    assert dynamic.input_size(shapes) == (640, 640)  # different shapes: the square imgsz
    batched = dynamic(paths)
    for path, res in zip(paths, batched):
        assert_same(res, dynamic_square(path), atol=1e-3)
        assert_same(res, model(path), atol=1e-3)  # same weights as the static 640x640 export


def test_max_batch_splits_list(dynamic: edgeseg.Model) -> None:
    small = edgeseg.Model(dynamic.runtime, dynamic.spec, rect=True, max_batch=2)
    assert small.max_batch == 2
    paths = [IMAGES / name for name in SAME_SHAPE]
    for a, b in zip(small(paths), dynamic(paths)):
        assert_same(a, b, atol=1e-3)


# -------------------------------------------------------------------------------------- rect


def test_rect_input_size(dynamic: edgeseg.Model, dynamic_square: edgeseg.Model, model: edgeseg.Model) -> None:
    assert dynamic.input_size([(1080, 1920)]) == (384, 640)
    assert dynamic.input_size([(1920, 1080)]) == (640, 384)
    assert dynamic.input_size([(640, 640)]) == (640, 640)
    assert dynamic_square.input_size([(1080, 1920)]) == (640, 640)
    assert model.input_size([(1080, 1920)]) == (640, 640)  # fixed-size model


def test_rect_close_to_square(dynamic: edgeseg.Model, dynamic_square: edgeseg.Model, image_path: Path) -> None:
    image = cv2.imread(str(image_path))  # 426x640
    frame = np.ascontiguousarray(image[33 : 33 + 360])  # a 16:9 crop, 360x640
    assert dynamic.input_size([frame.shape[:2]]) == (384, 640)
    rect = dynamic(frame)
    square = dynamic_square(frame)
    assert rect.image_shape == square.image_shape == (360, 640)
    top = square.scores > 0.5
    assert top.sum() >= 3
    iou = box_iou(square.boxes[top], rect.boxes)
    for i in range(int(top.sum())):
        same_class = rect.class_ids == square.class_ids[top][i]
        j = int(np.argmax(np.where(same_class, iou[i], -1)))
        assert same_class[j] and iou[i, j] > 0.9, f"{square.labels[i]} not found in the rect result"
        assert abs(rect.scores[j] - square.scores[top][i]) < 0.05
    assert rect.labels[0] == square.labels[0] == "tv"


# ----------------------------------------------------------------------------------- threads


def test_concurrent_calls_match_sequential(model: edgeseg.Model) -> None:
    paths = [IMAGES / name for name in THREADED]
    expected = [model(p) for p in paths]
    barrier = threading.Barrier(len(paths))

    def work(i: int) -> list[edgeseg.Result]:
        barrier.wait()
        return [model(paths[i]) for _ in range(2)]

    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        outcomes = list(pool.map(work, range(len(paths))))
    for exp, got in zip(expected, outcomes):
        for res in got:
            assert_same(res, exp, atol=1e-4)


# ------------------------------------------------------------------------------------ Result


def test_result_arrays(result: edgeseg.Result) -> None:
    n = len(result)
    assert n == 10
    assert result.image_shape == (426, 640)
    assert result.boxes.dtype == np.float32 and result.boxes.shape == (n, 4)
    assert result.scores.dtype == np.float32 and result.scores.shape == (n,)
    assert result.class_ids.dtype == np.int32 and result.class_ids.shape == (n,)
    h, w = result.image_shape
    x1, y1, x2, y2 = result.boxes.T
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= w).all() and (y2 <= h).all()
    assert (x2 > x1).all() and (y2 > y1).all()
    assert (np.diff(result.scores) <= 0).all(), "scores are not descending"
    assert ((result.scores > 0.25) & (result.scores <= 1)).all()
    assert ((result.class_ids >= 0) & (result.class_ids < 80)).all()


def test_labels_and_counts(result: edgeseg.Result) -> None:
    assert result.labels == [COCO80_NAMES[c] for c in result.class_ids]
    assert result.labels[0] == "tv"
    counts = result.counts()
    assert sum(counts.values()) == len(result)
    assert counts == {name: result.labels.count(name) for name in set(result.labels)}
    assert list(counts.values()) == sorted(counts.values(), reverse=True)
    assert counts["chair"] == 3
    assert "chair" in repr(result)


def test_dense_masks(result: edgeseg.Result) -> None:
    dense = result.masks.dense()
    assert dense.dtype == np.bool_
    assert dense.shape == (len(result), 426, 640)
    assert dense.any(axis=(1, 2)).all(), "an instance has an empty mask"
    np.testing.assert_array_equal(dense.sum(axis=(1, 2)), result.masks.areas())
    for i, box in enumerate(result.boxes):  # each mask lies within its (pixel-rounded) box
        ys, xs = np.nonzero(dense[i])
        assert xs.min() >= np.floor(box[0]) - 1 and xs.max() <= np.ceil(box[2])
        assert ys.min() >= np.floor(box[1]) - 1 and ys.max() <= np.ceil(box[3])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2 copy keyword
def test_rle_decodes_to_dense(result: edgeseg.Result) -> None:
    mask_utils = pytest.importorskip("pycocotools.mask")
    rles = result.masks.rle()
    assert len(rles) == len(result)
    assert all(r["size"] == [426, 640] and isinstance(r["counts"], str) for r in rles)
    decoded = mask_utils.decode(rles)  # (H, W, N) uint8, Fortran order
    np.testing.assert_array_equal(decoded.transpose(2, 0, 1).astype(bool), result.masks.dense())
    np.testing.assert_array_equal(mask_utils.area(rles), result.masks.areas())


def test_polygons(result: edgeseg.Result) -> None:
    polygons = result.masks.polygons()
    assert len(polygons) == len(result)
    dense = result.masks.dense()
    for i, polys in enumerate(polygons):
        assert polys, f"instance {i} has no polygon"
        for poly in polys:
            assert poly.dtype == np.float32 and poly.ndim == 2 and poly.shape[1] == 2 and len(poly) >= 3
            assert (poly >= 0).all() and (poly[:, 0] < 640).all() and (poly[:, 1] < 426).all()
        filled = np.zeros((426, 640), np.uint8)
        cv2.fillPoly(filled, [p.round().astype(np.int32) for p in polys], 1)
        inter = np.logical_and(filled, dense[i]).sum()
        assert inter / dense[i].sum() > 0.9  # the outer contours cover the mask


def test_to_coco(result: edgeseg.Result) -> None:
    dets = result.to_coco(139)
    assert len(dets) == len(result)
    assert [d["category_id"] for d in dets] == [COCO80_TO_91[c] for c in result.class_ids]
    assert dets[0]["category_id"] == 72  # tv: class 62, COCO id 72
    for d, box, score in zip(dets, result.boxes, result.scores):
        assert d["image_id"] == 139
        x, y, bw, bh = d["bbox"]
        np.testing.assert_allclose([x, y, x + bw, y + bh], box, atol=2e-3)
        assert d["score"] == pytest.approx(float(score), abs=1e-5)
        assert d["segmentation"]["size"] == [426, 640]

    as_dict = result.to_coco(1, category_map={i: 1000 + i for i in range(80)})
    assert [d["category_id"] for d in as_dict] == [1000 + c for c in result.class_ids]
    as_list = result.to_coco(1, category_map=[2000 + i for i in range(80)])
    assert [d["category_id"] for d in as_list] == [2000 + c for c in result.class_ids]
    custom = dataclasses.replace(result, names=tuple(f"class_{i}" for i in range(80)))
    assert [d["category_id"] for d in custom.to_coco(1)] == result.class_ids.tolist()


def test_draw(result: edgeseg.Result, image_path: Path) -> None:
    image = cv2.imread(str(image_path))
    original = image.copy()
    drawn = result.draw(image)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (drawn != image).any(axis=2).mean() > 0.05
    np.testing.assert_array_equal(image, original)  # the input is left alone
    plain = result.draw(image, labels=False)
    assert plain.shape == image.shape and (plain != drawn).any()
    with pytest.raises(ValueError, match="image"):
        result.draw(image[:100])


def test_timings(result: edgeseg.Result) -> None:
    assert set(result.timings) >= {"preprocess", "inference", "postprocess"}
    for stage in ("preprocess", "inference", "postprocess"):
        assert result.timings[stage] > 0, stage


def test_soft_masks(result: edgeseg.Result, model: edgeseg.Model, image_path: Path) -> None:
    agree = total = 0
    for i in range(len(result)):
        soft = result.masks.soft(i)
        binary = result.masks[i]
        assert soft.dtype == np.float32 and soft.shape == binary.shape
        assert np.isfinite(soft).all() and soft.min() >= 0 and soft.max() <= 1
        agree += int(((soft > 0.5) == binary.astype(bool)).sum())
        total += soft.size
    assert agree / total > 0.999
    hard = model(image_path)  # soft_masks only adds probabilities
    assert_same(hard, result)
    assert hard.masks.probabilities is None
    with pytest.raises(ValueError, match="soft_masks=True"):
        hard.masks.soft(0)


def test_class_filter(result: edgeseg.Result, model: edgeseg.Model, image_path: Path) -> None:
    persons = model(image_path, classes=["person"])
    assert len(persons) > 0 and set(persons.labels) == {"person"}
    keep = result.class_ids == 0
    np.testing.assert_allclose(persons.boxes, result.boxes[keep])
    np.testing.assert_allclose(persons.scores, result.scores[keep])
    assert_same(model(image_path, classes=[0]), persons)
    assert_same(model(image_path, classes="person"), persons)
    both = model(image_path, classes=["person", 56])
    assert set(both.labels) == {"person", "chair"}
    assert len(both) == int(np.isin(result.class_ids, [0, 56]).sum())


@pytest.mark.parametrize("name", [IMAGE, "000000018575.jpg"])
def test_agnostic(model: edgeseg.Model, name: str) -> None:
    aware = model(IMAGES / name, conf=0.1)
    agnostic = model(IMAGES / name, conf=0.1, agnostic=True)
    assert 0 < len(agnostic) <= len(aware)
    if name == "000000018575.jpg":  # overlapping boxes of different classes: one is suppressed
        assert len(agnostic) < len(aware)
    # with one class picture-wide NMS, no two kept boxes overlap more than the IoU threshold
    iou = box_iou(agnostic.boxes, agnostic.boxes)
    np.fill_diagonal(iou, 0)
    assert iou.max(initial=0) <= 0.7 + 1e-6


def test_max_det(result: edgeseg.Result, model: edgeseg.Model, image_path: Path) -> None:
    capped = model(image_path, max_det=2)
    assert len(capped) == 2
    np.testing.assert_allclose(capped.boxes, result.boxes[:2])
    np.testing.assert_array_equal(capped.class_ids, result.class_ids[:2])
    assert len(model(image_path, max_det=0)) == 0


# -------------------------------------------------------------------------------------- spec

SPECS = {
    # file: (head, imgsz, dynamic_hw, batch)
    "yolov8n-seg.onnx": ("yolo", (640, 640), False, 1),
    "yolov8n-seg-e2e.onnx": ("yolo_e2e", (640, 640), False, 1),
    "yolov8n-seg-dynamic.onnx": ("yolo", (640, 640), True, None),
    "yolov8n-seg-320-dynint8.onnx": ("yolo", (320, 320), False, 1),
    "yolo11n-seg-dynint8.onnx": ("yolo", (640, 640), False, 1),
    "broken/yolo11n-seg-qdq-collapsed.onnx": ("yolo", (640, 640), False, 1),
}


def test_spec_table_covers_shared_models() -> None:
    require_shared()
    found = {p.relative_to(MODELS).as_posix() for p in MODELS.rglob("*.onnx")}
    assert found == set(SPECS)


@pytest.mark.parametrize("model_file", sorted(SPECS))
def test_spec(model_file: str) -> None:
    require_shared()
    head, imgsz, dynamic_hw, batch = SPECS[model_file]
    m = edgeseg.load(MODELS / model_file)
    spec = m.spec
    assert isinstance(spec, edgeseg.ModelSpec)
    assert spec.head == head
    assert spec.task == "segment"
    assert spec.runtime == "onnxruntime"
    assert spec.num_classes == 80 and spec.names == COCO80_NAMES
    assert m.names == spec.names
    assert spec.layout.num_coeffs == 32
    assert spec.imgsz == imgsz
    assert spec.dynamic_hw is dynamic_hw
    assert spec.batch == batch
    assert spec.stride == 32
    assert spec.input_layout == "NCHW"
    assert len(spec.outputs) == 2
    assert {spec.layout.detections_output, spec.layout.prototypes_output} == {0, 1}
    text = spec.describe()
    for i, out in enumerate(spec.outputs):
        assert f"output {i}:" in text and out.name in text
    assert "(detections)" in text and "(prototypes)" in text
    assert head in text and model_file.split("/")[-1] in text
    assert spec.head in repr(m)
