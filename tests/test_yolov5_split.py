"""YOLOv5-seg split per stride as Rockchip's rknn_model_zoo exports it (head ``yolov5_levels``): it loads with no
configuration, its predictions equal the fused YOLOv5 fixture's (same weights, ``fixtures/make_yolov5.py``) on
coco-val-mini images, and ``_core.decode_yolov5_split`` agrees with a numpy decode (rknn_model_zoo's
box_process arithmetic) followed by ``reference_yolov5``'s NMS, float and quantized."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import edgeseg
import reference_yolov5
from edgeseg import _core
from edgeseg.coco import COCO80_NAMES
from edgeseg.errors import ModelError
from edgeseg.heads.yolo_split import YOLOV5_ANCHORS
from edgeseg.io import read_image

from conftest import IMAGES, require_shared
from parity import Comparison, compare_image

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "yolov5"
FUSED = FIXTURES / "yolov5n-seg-160.onnx"
SPLIT = FIXTURES / "yolov5n-seg-160-rknn-split.onnx"
NUM_IMAGES = 79  # every coco-val-mini image (the fixtures are 160 px: a few seconds)


def test_split_loads_with_no_configuration() -> None:
    spec = edgeseg.load(SPLIT).spec
    assert (spec.family, spec.head) == ("yolo_split", "yolov5_levels")
    assert spec.num_classes == 80 and spec.names == COCO80_NAMES and spec.imgsz == (160, 160)
    assert (spec.defaults.conf, spec.defaults.iou, spec.defaults.max_det) == (0.25, 0.45, 1000)
    lay = spec.layout
    assert [lv.stride for lv in lay.levels] == [8, 16, 32] and lay.num_coeffs == 32 and lay.prototypes_output == 6
    assert [(lv.boxes, lv.coeffs) for lv in lay.levels] == [(0, 1), (2, 3), (4, 5)]
    assert lay.anchors[0] == ((5.0, 6.5), (8.0, 15.0), (16.5, 11.5))  # the metadata's (the fixture's own)
    assert "anchors from metadata" in spec.describe()


def test_split_without_anchor_metadata_uses_yolov5_defaults(tmp_path: Path) -> None:
    model = onnx.load(str(SPLIT))
    keep = [(p.key, p.value) for p in model.metadata_props if p.key != "anchors"]
    del model.metadata_props[:]
    for k, v in keep:
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(tmp_path / "defaults.onnx"))
    spec = edgeseg.load(tmp_path / "defaults.onnx").spec
    assert spec.head == "yolov5_levels"
    assert spec.layout.anchors == tuple(YOLOV5_ANCHORS[s] for s in (8, 16, 32))


def test_split_equals_fused_fixture() -> None:
    """Same weights, decoded on the host instead of in the graph: same detections and masks as head ``yolov5``."""
    require_shared()
    split, fused = edgeseg.load(SPLIT), edgeseg.load(FUSED)
    assert fused.spec.head == "yolov5"
    cmp = Comparison()
    detections = 0
    for image in sorted(IMAGES.glob("*.jpg"))[:NUM_IMAGES]:
        image_id = int(image.stem)
        img = read_image(image)
        ours = split(img).to_coco(image_id)
        ref = fused(img).to_coco(image_id)
        compare_image(ours, ref, image_id, cmp)
        detections += len(ref)
    print(f"\n{detections} detections on {NUM_IMAGES} images: {cmp.summary()}")
    assert detections >= 5 * NUM_IMAGES
    assert not cmp.count_mismatches and not cmp.unmatched, cmp.summary()
    assert min(cmp.box_ious) >= 0.99, cmp.summary()
    assert max(cmp.score_errors) <= 1e-5, cmp.summary()
    assert np.mean(cmp.mask_ious) >= 0.97, cmp.summary()


# -- the core decoder on synthetic data -------------------------------------------------------------------

NC, NM, NA = 4, 3, 3
GRIDS = ((8, 10), (4, 5))
STRIDES = (8.0, 16.0)
ANCHORS = (((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)), ((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)))


def _synthetic(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per level: predictions [NA x (5 + NC), H, W] of probabilities and coefficients [NA x NM, H, W]."""
    out = []
    for h, w in GRIDS:
        preds = rng.uniform(0, 1, (NA, 5 + NC, h, w)).astype(np.float32)
        preds[:, 4] **= 2  # fewer candidates
        out.append((preds.reshape(NA * (5 + NC), h, w), rng.normal(size=(NA * NM, h, w)).astype(np.float32)))
    return out


def _numpy_rows(levels: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The fused head's rows (cx, cy, w, h, obj, classes, coefficients), anchor-major within each level, decoded
    as rknn_model_zoo's box_process does."""
    rows = []
    for (preds, coeffs), stride, anchors in zip(levels, STRIDES, ANCHORS):
        _, h, w = preds.shape
        p = preds.reshape(NA, 5 + NC, h, w)
        c = coeffs.reshape(NA, NM, h, w)
        col, row = np.meshgrid(np.arange(w), np.arange(h))
        grid = np.stack([col, row])[None].astype(np.float32)
        xy = (p[:, :2] * np.float32(2) - np.float32(0.5) + grid) * np.float32(stride)
        wh = (p[:, 2:4] * np.float32(2)) ** 2 * np.array(anchors, np.float32)[:, :, None, None]
        feat = np.concatenate([xy, wh, p[:, 4:], c], 1)  # [NA, 5 + NC + NM, h, w]
        rows.append(feat.transpose(0, 2, 3, 1).reshape(-1, 5 + NC + NM))
    return np.concatenate(rows).astype(np.float32)


def _levels(levels, quant=None) -> list[dict]:
    return [
        {
            "preds": p.reshape(p.shape[0], -1),
            "preds_quant": quant,
            "coefficients": c.reshape(c.shape[0], -1),
            "grid_hw": grid,
            "stride": stride,
            "anchors": anchors,
        }
        for (p, c), grid, stride, anchors in zip(levels, GRIDS, STRIDES, ANCHORS)
    ]


def _check(d: _core.Detections, ref: np.ndarray, rows: np.ndarray, atol: float) -> None:
    assert len(d.scores) == len(ref) > 10
    np.testing.assert_allclose(d.boxes, ref[:, :4], atol=atol)
    np.testing.assert_allclose(d.scores, ref[:, 4], rtol=1e-6)
    np.testing.assert_array_equal(d.class_ids, ref[:, 5])
    xyxy = np.concatenate([rows[:, :2] - rows[:, 2:4] / 2, rows[:, :2] + rows[:, 2:4] / 2], 1)
    which = [int(np.abs(xyxy - b).sum(1).argmin()) for b in d.boxes]
    np.testing.assert_allclose(d.coefficients, rows[which, 5 + NC :], atol=1e-6)  # as the model gave them


def test_core_decoder_matches_numpy_float() -> None:
    levels = _synthetic(np.random.default_rng(7))
    rows = _numpy_rows(levels)
    ref = reference_yolov5.non_max_suppression(rows, NM)
    d = _core.decode_yolov5_split(_levels(levels), NC, 0.25, 0.45, 1000, 30000, False)
    _check(d, ref, rows, 1e-3)
    # the fused decoder on the same rows: identical (anchor ids equal the fused rows)
    fused = _core.decode_yolo(rows.T, NC, 0.25, 0.45, 1000, 30000, False, objectness=True)
    np.testing.assert_array_equal(d.scores, fused.scores)
    np.testing.assert_array_equal(d.class_ids, fused.class_ids)
    np.testing.assert_allclose(d.boxes, fused.boxes, atol=1e-3)


def test_core_decoder_matches_numpy_uint8() -> None:
    """uint8 predictions (scale 1/255) and int8 coefficients: both sides read the same dequantized values."""
    levels = _synthetic(np.random.default_rng(11))
    scale, cscale = 1 / 255, 0.05
    q = [
        (
            np.clip(np.round(p / scale), 0, 255).astype(np.uint8),
            np.clip(np.round(c / cscale), -128, 127).astype(np.int8),
        )
        for p, c in levels
    ]
    deq = [(p.astype(np.float32) * np.float32(scale), c.astype(np.float32) * np.float32(cscale)) for p, c in q]
    rows = _numpy_rows(deq)
    ref = reference_yolov5.non_max_suppression(rows, NM)
    lv = _levels(q, (scale, 0))
    for d in lv:
        d["coefficients_quant"] = (cscale, 0)
    d = _core.decode_yolov5_split(lv, NC, 0.25, 0.45, 1000, 30000, False)
    _check(d, ref, rows, 1e-3)
    # NCHW-transposed (NHWC, anchor-major views) decodes the same
    lv_t = [dict(d, preds=np.ascontiguousarray(d["preds"].T).T) for d in lv]
    d_t = _core.decode_yolov5_split(lv_t, NC, 0.25, 0.45, 1000, 30000, False)
    np.testing.assert_array_equal(d_t.scores, d.scores)
    np.testing.assert_array_equal(d_t.boxes, d.boxes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lv: lv[0].update(preds=lv[0]["preds"][:-1]), r"predictions of level 0 have 26 channels; expected 3"),
        (lambda lv: lv[1].update(coefficients=lv[1]["coefficients"][:-1]), r"coefficients of level 1 have 8 channels"),
        (lambda lv: lv[0].update(grid_hw=(8, 9)), r"predictions of level 0 have 80 cells; the 8x9 grid has 72"),
        (lambda lv: lv[0].update(anchors=((10.0, 13.0), (16.0, 30.0))), r"expected 2 anchors x"),
        (lambda lv: lv[0].update(anchors=((10.0, 13.0), (16.0, -1.0), (1.0, 1.0))), r"positive and finite"),
        (lambda lv: lv[0].update(anchors=(10.0, 13.0)), r"must be a pair \(w, h\)"),
        (lambda lv: lv[1].update(stride=0.0), r"stride of level 1 must be positive"),
        (lambda lv: lv[0].update(preds=lv[0]["preds"] * 3), r"above 1"),
    ],
)
def test_core_decoder_rejects_bad_input(change, message: str) -> None:
    lv = _levels(_synthetic(np.random.default_rng(0)))
    change(lv)
    with pytest.raises(ValueError, match=message):
        _core.decode_yolov5_split(lv, NC, 0.25, 0.45, 100, 1000, False)


def _with_outputs(dst: Path, change) -> Path:
    """SPLIT with its output list changed by ``change(graph)``."""
    model = onnx.load(str(SPLIT))
    change(model.graph)
    onnx.save(model, str(dst))
    return dst


def test_bad_channel_count_is_a_clear_error(tmp_path: Path) -> None:
    """A stride-16 predictions tensor of 256 channels fits no 3 x (5 + 80): refused, naming the outputs."""

    def pad(graph) -> None:
        for node in graph.node:
            node.output[:] = ["output2_inner" if o == "output2" else o for o in node.output]
        pads = onnx.helper.make_tensor("pads2", onnx.TensorProto.INT64, [8], [0, 0, 0, 0, 0, 1, 0, 0])
        graph.initializer.append(pads)
        graph.node.append(onnx.helper.make_node("Pad", ["output2_inner", "pads2"], ["output2"]))
        graph.output[2].type.tensor_type.shape.dim[1].dim_value = 256

    bad = _with_outputs(tmp_path / "bad.onnx", pad)
    with pytest.raises(ModelError, match=r"stride 16: expected YOLOv5 predictions .*output2 \(256 channels\)"):
        edgeseg.load(bad)


def _quantized(dst: Path) -> Path:
    """SPLIT with every output quantized in the graph (QuantizeLinear, per-tensor): predictions uint8 (1/255),
    coefficients and prototypes int8, as an RKNN export hands them over."""
    model = onnx.load(str(SPLIT))
    graph = model.graph
    for k, out in enumerate(graph.output):
        name = out.name
        for node in graph.node:
            node.output[:] = [f"{name}_float" if o == name else o for o in node.output]
        channels = out.type.tensor_type.shape.dim[1].dim_value
        if channels == 3 * 85:
            scale, zp, dtype = 1 / 255, 0, onnx.TensorProto.UINT8
        else:
            scale, zp, dtype = (0.04 if channels == 96 else 0.06), 3 * (k % 2), onnx.TensorProto.INT8
        graph.initializer.append(onnx.helper.make_tensor(f"{name}_scale", onnx.TensorProto.FLOAT, [], [scale]))
        graph.initializer.append(onnx.helper.make_tensor(f"{name}_zp", dtype, [], [zp]))
        graph.node.append(
            onnx.helper.make_node("QuantizeLinear", [f"{name}_float", f"{name}_scale", f"{name}_zp"], [name])
        )
        out.type.tensor_type.elem_type = dtype
    onnx.save(model, str(dst))
    return dst


def test_quantized_split_decodes_in_integer_domain(tmp_path: Path) -> None:
    """uint8 predictions, int8 coefficients and prototypes: the same detections as the float layout decoding the
    dequantized outputs."""
    require_shared()
    model = edgeseg.load(_quantized(tmp_path / "int8.onnx"))
    assert model.spec.head == "yolov5_levels"
    assert all(o.dtype != np.float32 and o.scale is not None for o in model.spec.outputs)
    float_model = edgeseg.load(SPLIT)
    options = model.options()
    cmp, found = Comparison(), 0
    for image in sorted(IMAGES.glob("*.jpg"))[:NUM_IMAGES]:
        image_id = int(image.stem)
        tensor, boxes = model.preprocess([read_image(image)])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, boxes, options)[0]
        real = [info.dequantize(o) for info, o in zip(model.spec.outputs, outputs)]
        reference = float_model.postprocess(real, boxes, options)[0]
        found += len(reference)
        compare_image(ours.to_coco(image_id), reference.to_coco(image_id), image_id, cmp)
    print(f"\nint8: {found} detections on {NUM_IMAGES} images: {cmp.summary()}")
    assert found >= 5 * NUM_IMAGES
    assert not cmp.count_mismatches and not cmp.unmatched, cmp.summary()
    assert min(cmp.box_ious) >= 0.999 and max(cmp.score_errors) <= 1e-6, cmp.summary()
    assert np.mean(cmp.mask_ious) >= 0.999, cmp.summary()
