"""YOLACT family: layout detection, host priors, and agreement with the numpy transcription of
yolact's own postprocess (tests/reference_yolact.py) on the fixture models' outputs for coco-val-mini."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgeseg
import reference_yolact as ref
from edgeseg import _core
from edgeseg.errors import ModelError
from edgeseg.heads.yolact import BASE_SCALES, YOLACT_PREPROCESS, conv_sizes, make_priors, prior_scales

from conftest import IMAGES, MODELS, ROOT, require_shared
from parity import box_iou

FIXTURES = ROOT / "tests" / "fixtures" / "yolact"
LAYOUTS = ("yolact_boxes", "yolact_priors", "yolact_loc")
FAST_IMAGES = 6


@pytest.fixture(scope="module")
def models() -> dict[str, edgeseg.Model]:
    return {name: edgeseg.load(FIXTURES / f"{name}.onnx") for name in LAYOUTS}


def _images() -> list[Path]:
    require_shared()
    return sorted(IMAGES.glob("*.jpg"))


def _reference_priors(model: edgeseg.Model, outputs: list[np.ndarray]) -> np.ndarray | None:
    layout = model.spec.layout
    if layout.boxes_decoded:
        return None
    if layout.priors_output is not None:
        return outputs[layout.priors_output].reshape(-1, 4)
    side = model.spec.imgsz[0]
    return ref.make_priors_loop(side, [[s] for s in BASE_SCALES], square_anchors=True)


def _compare(model: edgeseg.Model, path: Path, **settings) -> tuple[int, list[float]]:
    image = cv2.imread(str(path))
    tensor, boxes = model.preprocess([image])
    outputs = model.infer(tensor)
    ours = model.postprocess(outputs, boxes, model.options(**settings))[0]
    lay = model.spec.layout
    d = model.spec.defaults
    det = ref.detect(
        outputs[lay.boxes_output][0],
        outputs[lay.conf_output][0],
        outputs[lay.mask_output][0],
        _reference_priors(model, outputs),
        conf_thresh=settings.get("conf", d.conf),
        iou=settings.get("iou", d.iou),
        max_det=settings.get("max_det", d.max_det),
        cross_class=settings.get("agnostic", False),
    )
    proto = outputs[lay.proto_output][0]
    classes, scores, rboxes, rmasks = ref.postprocess(*det, proto, *image.shape[:2])
    assert len(ours.boxes) == len(scores), path.name
    np.testing.assert_array_equal(ours.class_ids, classes)
    np.testing.assert_allclose(ours.scores, scores, rtol=0, atol=0)
    if len(scores):
        assert np.diag(box_iou(ours.boxes, rboxes)).min() >= 0.99
    dense = ours.masks.dense()
    ious = []
    for a, b in zip(dense, rmasks):
        union = np.logical_or(a, b).sum()
        ious.append(1.0 if union == 0 else np.logical_and(a, b).sum() / union)
    return len(scores), ious


@pytest.mark.parametrize("name", LAYOUTS)
def test_layouts_load_without_configuration(models, name) -> None:
    m = models[name]
    assert (m.spec.family, m.spec.head) == ("yolact", name)
    assert m.spec.preprocess == YOLACT_PREPROCESS and m.spec.preprocess.resize == "stretch"
    assert (m.spec.defaults.conf, m.spec.defaults.iou, m.spec.defaults.max_det, m.spec.defaults.nms) == (
        0.05,
        0.5,
        100,
        "fast",
    )
    assert m.spec.num_classes == 80
    text = m.spec.describe()
    assert f"layout:      {name} (YOLACT export" in text and "(prototypes)" in text


@pytest.mark.parametrize("name", LAYOUTS)
def test_agreement_with_the_reference_fast(models, name) -> None:
    counts, ious = [], []
    for path in _images()[:FAST_IMAGES]:
        n, image_ious = _compare(models[name], path)
        counts.append(n)
        ious += image_ious
    assert max(counts) >= 10 and min(counts) >= 1, counts  # fixtures are not degenerate
    assert np.mean(ious) >= 0.99 and np.min(ious) >= 0.9, (np.mean(ious), np.min(ious))


@pytest.mark.skipif(not os.environ.get("EDGESEG_FULL"), reason="all 79 images: set EDGESEG_FULL=1")
@pytest.mark.parametrize("name", LAYOUTS)
def test_agreement_with_the_reference_all_images(models, name) -> None:
    ious = []
    for path in _images():
        ious += _compare(models[name], path)[1]
    assert np.mean(ious) >= 0.99, np.mean(ious)


@pytest.mark.parametrize("settings", [{"agnostic": True}, {"conf": 0.2, "iou": 0.3, "max_det": 20}])
def test_agreement_with_other_settings(models, settings) -> None:
    for path in _images()[:2]:
        _, ious = _compare(models["yolact_loc"], path, **settings)
        assert not ious or np.mean(ious) >= 0.99


def test_host_priors_are_yolacts() -> None:
    assert conv_sizes(550) == [69, 35, 18, 9, 5]
    for variant, square, count in (("yolact", True, 19248), ("yolact++", False, 57744)):
        ours = make_priors(550, prior_scales(variant, 550), square)
        theirs = ref.make_priors_loop(550, prior_scales(variant, 550), square)
        assert len(ours) == count
        np.testing.assert_array_equal(ours, theirs)
    # yolact_im400: scales int(s / 550 * 400), as its config computes them
    assert prior_scales("yolact", 400) == [[17.0], [34.0], [69.0], [139.0], [279.0]]


def test_forcing_the_family(models) -> None:
    assert edgeseg.load(FIXTURES / "yolact_loc.onnx", head="yolact").spec.head == "yolact_loc"
    require_shared()
    with pytest.raises(ModelError, match="the outputs are not a yolact layout"):
        edgeseg.load(MODELS / "yolov8n-seg.onnx", head="yolact")


def test_nms_choices(models) -> None:
    path = _images()[0]
    m = models["yolact_boxes"]
    greedy = m(path, nms="box")
    fast = m(path)
    assert len(greedy) >= len(fast) > 0  # Fast NMS suppresses at least what greedy NMS does
    with pytest.raises(ValueError, match="nms='fast'"):
        m(path, nms="matrix")


def test_box_sanitizing() -> None:
    # yolact's sanitize_coordinates in the core's whole postprocess: each pair scaled, ordered, clamped.
    from edgeseg.heads.base import PostprocessOptions

    layout = _core.YolactLayout(boxes=0, boxes_decoded=True, conf=1, coeffs=2, prototypes=3)
    outputs = [np.array([[0.5, -0.1, 0.2, 1.2]], np.float32), np.array([[0.0, 1.0]], np.float32),
               np.ones((1, 1), np.float32), np.ones((4, 4, 1), np.float32)]  # fmt: skip
    lb = _core.make_letterbox(100, 200, 40, 40, "stretch")
    found = _core.postprocess_yolact(layout, outputs, [None] * 4, lb, PostprocessOptions(nms="fast"))
    np.testing.assert_allclose(found.boxes, [[40, 0, 100, 100]], atol=1e-4)
    assert found.class_ids.tolist() == [0] and len(found.masks.rects) == 1


def test_core_rejects_bad_input() -> None:
    loc, conf, coeffs = np.zeros((5, 4), np.float32), np.full((5, 3), 0.5, np.float32), np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match=r"priors must be \(5, 4\)"):
        _core.decode_yolact(loc, conf, coeffs, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="background column"):
        _core.decode_yolact(loc, conf[:, :1], coeffs)
    with pytest.raises(ValueError, match="NaN"):
        _core.yolact_masks(np.zeros((2, 4, 4), np.float32), coeffs[:1], np.full((1, 4), np.nan, np.float32), (8, 8))


# ---- almost-right layouts: graphs with outputs of the given shapes ----------------------------------


def _graph(tmp_path: Path, outputs: dict[str, list[int]], side: int = 64, metadata: dict | None = None) -> Path:
    nodes, infos = [], []
    for name, shape in outputs.items():
        nodes.append(
            helper.make_node(
                "ConstantOfShape",
                [f"{name}_shape"],
                [name],
                value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]),
            )
        )
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    inits = [helper.make_tensor(f"{n}_shape", TensorProto.INT64, [len(s)], s) for n, s in outputs.items()]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, side, side])], infos, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def test_almost_right_layouts_are_clear_errors(tmp_path) -> None:
    n = 3 * sum(s * s for s in conv_sizes(64))
    good = {"loc": [1, n, 4], "conf": [1, n, 3], "mask": [1, n, 8], "proto": [1, 16, 16, 8]}
    assert edgeseg.load(_graph(tmp_path, good)).spec.head == "yolact_loc"
    cases = [
        ({**good, "mask": [1, n, 7]}, r"mask coefficients mask \[1, \d+, 7\].*K=7.*proto \[1, 16, 16, 8\].*8 channels"),
        ({**good, "conf": [1, n + 3, 3]}, r"disagree on the number of priors N"),
        ({**good, "conf": [1, n, 1]}, r"needs a background column"),
        (
            {**good, "loc": [1, n + 1, 4], "conf": [1, n + 1, 3], "mask": [1, n + 1, 8]},
            rf"N={n + 1} priors.*yolact {n}",
        ),
        ({**good, "priors": [n - 1, 4]}, rf"priors priors \[{n - 1}, 4\] float32 have {n - 1} rows.*N={n}"),
    ]
    for outputs, message in cases:
        with pytest.raises(ModelError, match=message):
            edgeseg.load(_graph(tmp_path, outputs))
    with pytest.raises(ModelError, match="metadata names 2 classes; expected 3 columns"):
        edgeseg.load(_graph(tmp_path, {**good, "conf": [1, n, 4]}, metadata={"names": "['a', 'b']"}))


def test_boxes_or_loc_must_be_named_or_chosen(tmp_path) -> None:
    n = 300
    outputs = {"o1": [1, n, 4], "o2": [1, n, 5], "o3": [1, n, 8], "o4": [1, 16, 16, 8]}
    with pytest.raises(ModelError, match="pass options=\\{'boxes': 'decoded'\\}"):
        edgeseg.load(_graph(tmp_path, outputs))
    m = edgeseg.load(_graph(tmp_path, outputs), options={"boxes": "decoded"})
    assert m.spec.head == "yolact_boxes" and m.spec.num_classes == 4
