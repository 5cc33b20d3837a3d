"""The raw RTMDet-Ins head: layout detection, agreement with the numpy transcription of mmdet's postprocess
(tests/reference_rtmdet.py) on the fixture's outputs for coco-val-mini images, and almost-right layouts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg import _core
from edgeseg.errors import ModelError
from edgeseg.heads.rtmdet import RTMDET_DEFAULTS, RTMDET_PREPROCESS

from conftest import IMAGES, MODELS
from parity import box_iou

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "rtmdet" / "rtmdet_ins_raw.onnx"
sys.path.insert(0, str(HERE / "fixtures"))
sys.path.insert(0, str(HERE))

import make_rtmdet  # noqa: E402

import reference_rtmdet as ref  # noqa: E402

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model() -> edgeseg.Model:
    return edgeseg.load(str(FIXTURE))


def _images(step: int) -> list[Path]:
    if not IMAGES.is_dir():
        pytest.skip(f"coco-val-mini images not found at {IMAGES}")
    return sorted(IMAGES.glob("*.jpg"))[::step]


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _agree(model: edgeseg.Model, paths: list[Path], conf: float, max_det: int = 300) -> list[float]:
    """edgeseg vs the reference on each image: same count, classes, scores, boxes (IoU >= 0.99), masks."""
    ious: list[float] = []
    total = 0
    for path in paths:
        image = cv2.imread(str(path))
        tensor, lbs = model.preprocess([image])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, lbs, model.options(conf=conf, max_det=max_det))[0]
        meta = ref.img_meta(image.shape[0], image.shape[1], model.spec.imgsz)
        theirs = ref.predict(
            [o[0] for o in outputs], (8, 16, 32), meta, ref.Config(score_thr=conf, max_per_img=max_det)
        )
        assert len(ours.boxes) == len(theirs["boxes"]), path.name
        total += len(ours.boxes)
        if not len(ours.boxes):
            continue
        h, w = image.shape[:2]
        boxes = theirs["boxes"].copy()  # mmdet leaves boxes unclipped past the image; edgeseg clips them
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        np.testing.assert_array_equal(ours.class_ids, theirs["labels"])
        np.testing.assert_allclose(ours.scores, theirs["scores"], rtol=1e-5, atol=1e-6)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert np.diag(box_iou(ours.boxes, boxes))[area > 0].min() >= 0.99, path.name
        np.testing.assert_allclose(ours.boxes, boxes, atol=0.05)  # boxes in the padding clip to zero area
        dense = ours.masks.dense()
        ious.extend(_mask_iou(a, b) for a, b in zip(dense, theirs["masks"]))
    assert total > 0
    return ious


def test_layout_is_detected(model: edgeseg.Model) -> None:
    spec = model.spec
    assert (spec.family, spec.head) == ("rtmdet", "rtmdet_ins")
    assert spec.preprocess == RTMDET_PREPROCESS and spec.defaults == RTMDET_DEFAULTS
    assert spec.names == ("warm", "cool", "bright", "textured")
    lay = spec.layout
    assert lay.strides == (8, 16, 32) and lay.num_params == 169 and lay.feat_channels == 8
    assert [spec.outputs[i].name for i in lay.kernel_outputs] == ["kernel_pred_8", "kernel_pred_16", "kernel_pred_32"]
    assert "mask net:    3 dynamic 1x1 convs over 8 + 2 channels, 8 wide (169 parameters)" in spec.describe()
    assert edgeseg.load(str(FIXTURE), head="rtmdet").spec.head == "rtmdet_ins"


def test_fixture_is_not_degenerate(model: edgeseg.Model) -> None:
    counts, classes, areas = [], set(), []
    for path in _images(4):
        r = model(str(path))
        counts.append(len(r.boxes))
        classes.update(r.class_ids.tolist())
        areas.extend(r.masks.areas().tolist())
    assert np.median(counts) >= 5 and max(counts) >= 40 and len(set(counts)) > 5
    assert len(classes) >= 3 and np.median(areas) > 500


def test_agrees_with_reference_fast_subset(model: edgeseg.Model) -> None:
    ious = _agree(model, _images(5), conf=0.3)
    assert np.mean(ious) >= 0.99 and np.min(ious) >= 0.9


def test_agrees_with_reference_low_threshold(model: edgeseg.Model) -> None:
    ious = _agree(model, _images(20), conf=0.05, max_det=100)
    assert np.mean(ious) >= 0.99


@pytest.mark.skipif(not os.environ.get("EDGESEG_SLOW"), reason="all 79 images: set EDGESEG_SLOW=1")
def test_agrees_with_reference_all_images(model: edgeseg.Model) -> None:
    ious = _agree(model, _images(1), conf=0.3)
    assert np.mean(ious) >= 0.99


def test_reference_resize_matches_torch() -> None:
    f = torch.nn.functional
    x = np.random.default_rng(0).normal(size=(3, 7, 9)).astype(np.float32)
    up = f.interpolate(torch.from_numpy(x)[None], scale_factor=8, mode="bilinear").numpy()[0]
    np.testing.assert_allclose(ref.interpolate(x, (56, 72), scale=(8, 8)), up, atol=1e-5)
    down = f.interpolate(torch.from_numpy(up)[None], size=(45, 61), mode="bilinear", align_corners=False).numpy()[0]
    np.testing.assert_allclose(ref.interpolate(up, (45, 61)), down, atol=1e-5)


def test_shape_detection_without_names(tmp_path: Path) -> None:
    names = [f"output{i}" for i in range(10)]
    path = make_rtmdet.export(tmp_path / "anon.onnx", names=names, metadata=False)
    spec = edgeseg.load(str(path)).spec
    assert spec.layout.cls_outputs == (0, 1, 2) and spec.layout.kernel_outputs == (6, 7, 8)
    assert spec.layout.mask_output == 9 and spec.names[0] == "class_0"


def test_kernel_count_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    path = make_rtmdet.export(tmp_path / "k168.onnx", model=make_rtmdet.RawRtmdetIns(kernel_channels=168))
    with pytest.raises(
        ModelError,
        match=r"kernel outputs kernel_pred_8, kernel_pred_16, kernel_pred_32 have 168 "
        r"channels; .* 8-channel mask feature mask_feat .* needs 169",
    ):
        edgeseg.load(str(path))
    # The load options describe other mask networks; the count they imply is what the error names.
    with pytest.raises(ModelError, match=r"\(\+2 relative coordinates, 2 layers 8 wide\) needs 97"):
        edgeseg.load(str(path), options={"num_dyconvs": 2})


class _Stub(torch.nn.Module):
    """Outputs of given (channels, stride) from the input: for layouts that are almost right."""

    def __init__(self, shapes: list[tuple[int, int]]) -> None:
        super().__init__()
        self.shapes = shapes

    def forward(self, x):
        f = torch.nn.functional
        return tuple(f.avg_pool2d(x, s).mean(1, keepdim=True).repeat(1, c, 1, 1) for c, s in self.shapes)


def _stub(tmp_path: Path, shapes: list[tuple[int, int]], names: list[str] | None = None) -> str:
    names = names or make_rtmdet.output_names()
    return str(make_rtmdet.export(tmp_path / "stub.onnx", model=_Stub(shapes), names=names, metadata=False))


GOOD = [(4, 8), (4, 16), (4, 32), (4, 8), (4, 16), (4, 32), (169, 8), (169, 16), (169, 32), (8, 8)]


def test_almost_right_layouts(tmp_path: Path) -> None:
    assert edgeseg.load(_stub(tmp_path, GOOD)).spec.head == "rtmdet_ins"
    bad_mask = [*GOOD[:9], (8, 16)]
    with pytest.raises(ModelError, match=r"mask feature mask_feat is 20x20; expected the finest level's 40x40"):
        edgeseg.load(_stub(tmp_path, bad_mask))
    bad_box = [*GOOD[:3], (5, 8), (5, 16), (5, 32), *GOOD[6:]]
    with pytest.raises(ModelError, match=r"box output bbox_pred_8 has 5 channels, expected 4"):
        edgeseg.load(_stub(tmp_path, bad_box))
    mask12 = [*GOOD[:9], (12, 8)]
    with pytest.raises(ModelError, match=r"have 169 channels; .* 12-channel mask feature mask_feat .* needs 201"):
        edgeseg.load(_stub(tmp_path, mask12))
    # Without names the shapes still tell the roles, and the same mismatch is reported.
    anon = [f"out{i}" for i in range(10)]
    with pytest.raises(ModelError, match=r"out6, out7, out8 have 169 channels; .* mask feature out9 .* needs 201"):
        edgeseg.load(_stub(tmp_path, mask12, anon))
    assert _core.dynconv_num_params(12, 8, 3) == 201
    # Nine outputs: not three per level plus one, so no family reads it.
    with pytest.raises(ModelError, match="match no supported model family"):
        edgeseg.load(_stub(tmp_path, GOOD[:9], make_rtmdet.output_names()[:9]))


def test_forcing_rtmdet_on_a_yolo_model() -> None:
    model = MODELS / "yolov8n-seg.onnx"
    if not model.exists():
        pytest.skip("shared models not found")
    with pytest.raises(ModelError, match="the outputs are not a rtmdet layout"):
        edgeseg.load(str(model), head="rtmdet")


def test_core_validates_dynamic_masks(model: edgeseg.Model) -> None:
    lb = _core.make_letterbox(100, 200, 320, 320, "keep_ratio")
    feat = np.zeros((8, 40, 40), np.float32)
    boxes = np.array([[10, 10, 50, 50]], np.float32)
    priors = np.array([[30, 30, 8]], np.float32)
    ok = _core.dynamic_masks(feat, np.zeros((1, 169), np.float32), priors, boxes, lb, drop_empty=False)
    assert ok.rects.tolist() == [[10, 10, 40, 40]] and ok.areas.tolist() == [0]
    with pytest.raises(ValueError, match=r"params must have shape \(N, 169\)"):
        _core.dynamic_masks(feat, np.zeros((1, 168), np.float32), priors, boxes, lb)
    with pytest.raises(ValueError, match="keep_ratio letterbox"):
        _core.dynamic_masks(
            feat, np.zeros((1, 169), np.float32), priors, boxes, _core.make_letterbox(100, 200, 320, 320)
        )
    with pytest.raises(ValueError, match="does not cover the model input"):
        _core.dynamic_masks(feat[:, :20], np.zeros((1, 169), np.float32), priors, boxes, lb)
    with pytest.raises(ValueError, match="parameters contain NaN"):
        _core.dynamic_masks(feat, np.full((1, 169), np.nan, np.float32), priors, boxes, lb)
    with pytest.raises(ValueError, match="nms_pre must be >= 1"):
        _core.decode_rtmdet(
            [np.zeros((4, 40, 40), np.float32)],
            [np.zeros((4, 40, 40), np.float32)],
            [np.zeros((169, 40, 40), np.float32)],
            [8],
            0.3,
            0.65,
            100,
            0,
            False,
            None,
            (320, 320),
        )


def test_dynamic_mask_is_the_network(model: edgeseg.Model) -> None:
    """A one-instance check of the core against the reference's network on a full-frame crop."""
    rng = np.random.default_rng(1)
    feat = rng.normal(size=(8, 40, 40)).astype(np.float32)
    params = (rng.normal(size=(1, 169)) * 0.5).astype(np.float32)
    priors = np.array([[160, 120, 16]], np.float32)
    lb = _core.make_letterbox(320, 320, 320, 320, "keep_ratio")
    got = _core.dynamic_masks(feat, params, priors, np.array([[0, 0, 320, 320]], np.float32), lb, drop_empty=False)
    logits = ref.mask_logits(feat, params, priors, 8, ref.Config())
    want = ref.interpolate(logits, (320, 320), scale=(8, 8))[0] > 0
    mask = edgeseg.InstanceMasks(got.rects, got.offsets, got.bits, (320, 320)).dense()[0]
    assert _mask_iou(mask, want) >= 0.999
