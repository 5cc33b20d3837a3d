"""SOLOv2 family: layouts detected from the file, agreement with the numpy transcription of MMDetection's
postprocess (tests/reference_solov2.py) on fixture outputs of coco-val-mini, almost-right layouts refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg import _core
from edgeseg.errors import ModelError
from reference_solov2 import Solov2Cfg, run_reference

from conftest import IMAGES, require_shared
from parity import box_iou

FIXTURES = Path(__file__).parent / "fixtures" / "solov2"
LEVELS = FIXTURES / "solov2_levels.onnx"
FLAT = FIXTURES / "solov2_flat.onnx"


def _images() -> list[Path]:
    require_shared()
    return sorted(IMAGES.glob("*.jpg"))


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _compare(model: edgeseg.Model, paths: list[Path], **options: object) -> dict[str, float]:
    """edgeseg vs the reference on every image: counts must agree; box and mask IoU of matched pairs."""
    cfg = Solov2Cfg()
    total, box_ious, mask_ious, score_err = 0, [], [], 0.0
    for path in paths:
        image = cv2.imread(str(path))
        tensor, lbs = model.preprocess([image])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, lbs, model.options(**options))[0]
        ref = run_reference(model, outputs, lbs[0], cfg=cfg)
        assert len(ours.boxes) == len(ref.scores), (
            f"{path.name}: {len(ours.boxes)} instances, reference {len(ref.scores)}"
        )
        total += len(ref.scores)
        if not len(ref.scores):
            continue
        dense = ours.masks.dense()
        assert dense.shape == ref.masks.shape
        # Pairs by class and score (equal scores may come in either order; then the best overlap).
        used: set[int] = set()
        for j in range(len(ref.scores)):
            cands = [
                i
                for i in range(len(ours.boxes))
                if i not in used and ours.class_ids[i] == ref.labels[j] and abs(ours.scores[i] - ref.scores[j]) < 1e-4
            ]
            assert cands, f"{path.name}: reference instance {j} (class {ref.labels[j]}) has no counterpart"
            i = cands[0] if len(cands) == 1 else max(cands, key=lambda i: _mask_iou(dense[i], ref.masks[j]))
            used.add(i)
            mask_ious.append(_mask_iou(dense[i], ref.masks[j]))
            box_ious.append(float(box_iou(ours.boxes[i : i + 1], ref.boxes[j : j + 1])[0, 0]))
            score_err = max(score_err, abs(float(ours.scores[i]) - float(ref.scores[j])))
    return {
        "instances": total,
        "min_box_iou": min(box_ious, default=1.0),
        "mean_box_iou": float(np.mean(box_ious)) if box_ious else 1.0,
        "mean_mask_iou": float(np.mean(mask_ious)) if mask_ious else 1.0,
        "score_err": score_err,
    }


@pytest.mark.parametrize("path", [LEVELS, FLAT], ids=["levels", "flat"])
def test_agrees_with_reference_on_coco_val_mini(path: Path) -> None:
    model = edgeseg.load(path)
    stats = _compare(model, _images())
    assert stats["instances"] > 79 * 5, stats  # non-degenerate: dozens of instances per image on average
    assert stats["mean_box_iou"] >= 0.99, stats
    assert stats["min_box_iou"] >= 0.9, stats
    assert stats["mean_mask_iou"] >= 0.99, stats
    assert stats["score_err"] < 1e-4, stats


def test_layouts_and_settings_are_read_from_the_files() -> None:
    levels = edgeseg.load(LEVELS)
    assert (levels.spec.family, levels.spec.head) == ("solov2", "solov2_levels")
    lay = levels.spec.layout
    assert lay.grids == (40, 36, 24, 16, 12) and lay.strides == (8, 8, 16, 32, 32)
    assert lay.cate_logits and lay.num_kernels == 8 and lay.mask_stride == 4
    assert levels.spec.num_classes == 80 and levels.spec.names[0] == "person"
    assert levels.spec.preprocess.resize == "keep_ratio" and levels.spec.preprocess.pad_value is None
    d = levels.spec.defaults
    assert (d.conf, d.max_det, d.nms, d.mask_threshold) == (0.1, 100, "matrix", 0.5)
    flat = edgeseg.load(FLAT)
    assert (flat.spec.head, flat.spec.layout.grids, flat.spec.layout.strides) == (
        "solov2_flat",
        (20, 12, 8),
        (8, 16, 32),
    )
    assert not flat.spec.layout.cate_logits  # probabilities in the graph: found by the probe
    assert flat.spec.names == ("bolt", "nut", "washer", "gear", "spring", "bracket")
    assert edgeseg.load(FLAT, head="solov2").spec.head == "solov2_flat"
    assert "solov2_flat" in flat.spec.describe() and "mask feature" in flat.spec.describe()


def test_flat_and_levels_decode_the_same() -> None:
    """The same raw head, flattened as MMDeploy does, decodes to the same instances."""
    model = edgeseg.load(LEVELS)
    image = cv2.imread(str(_images()[0]))
    tensor, lbs = model.preprocess([image])
    outputs = model.infer(tensor)
    a = model.postprocess(outputs, lbs, model.options())[0]
    cate = np.concatenate([o[0].transpose(1, 2, 0).reshape(-1, 80) for o in outputs[:5]])[None]
    kern = np.concatenate([o[0].transpose(1, 2, 0).reshape(-1, 8) for o in outputs[5:10]])[None]
    lay = model.spec.layout
    r = _core.decode_solov2(
        [cate[0][o : o + s * s].reshape(s, s, 80).transpose(2, 0, 1) for o, s in _offsets(lay.grids)],
        [kern[0][o : o + s * s].reshape(s, s, 8).transpose(2, 0, 1) for o, s in _offsets(lay.grids)],
        outputs[10][0],
        [8, 8, 16, 32, 32],
        lbs[0],
    )
    np.testing.assert_array_equal(r.boxes, a.boxes)
    np.testing.assert_array_equal(r.scores, a.scores)
    np.testing.assert_array_equal(r.masks.bits, a.masks.data)


def _offsets(grids: tuple[int, ...]) -> list[tuple[int, int]]:
    out, start = [], 0
    for s in grids:
        out.append((start, s))
        start += s * s
    return out


@pytest.mark.parametrize("nms", ["mask", "fast", "box"])
def test_other_nms_kinds_run_and_suppress(nms: str) -> None:
    model = edgeseg.load(LEVELS)
    path = _images()[0]
    matrix = model(str(path))
    other = model(str(path), nms=nms, iou=0.3)
    assert 0 < len(other) <= len(matrix) + 100
    assert np.all(np.diff(other.scores) <= 0)


def test_linear_kernel_and_options() -> None:
    model = edgeseg.load(LEVELS, options={"matrix_kernel": "linear", "filter_thr": 0.1, "nms_pre": 50})
    lay = model.spec.layout
    assert (lay.kernel, lay.filter_thr, lay.nms_pre) == ("linear", 0.1, 50)
    stats = _compare_cfg(model, Solov2Cfg(kernel="linear", filter_thr=0.1, nms_pre=50))
    assert stats >= 0.99


def _compare_cfg(model: edgeseg.Model, cfg: Solov2Cfg) -> float:
    ious = []
    for path in _images()[:8]:
        tensor, lbs = model.preprocess([cv2.imread(str(path))])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, lbs, model.options())[0]
        ref = run_reference(model, outputs, lbs[0], cfg=cfg)
        assert len(ours.boxes) == len(ref.scores)
        np.testing.assert_allclose(np.sort(ours.scores), np.sort(ref.scores), atol=1e-4)
        if len(ref.scores):
            ious.append(_mask_iou(ours.masks.dense(), ref.masks))
    return float(np.mean(ious))


def test_small_inputs_and_class_filter() -> None:
    model = edgeseg.load(FLAT)
    result = model(str(_images()[3]), classes=["nut"])
    assert set(result.class_ids.tolist()) <= {1}
    soft = model(str(_images()[3]), soft_masks=True)
    assert len(soft) == len(model(str(_images()[3])))


def _fake(tmp_path: Path, outputs: dict[str, list[int]], meta: dict[str, str] | None = None) -> Path:
    """An ONNX model with one image input and constant outputs of these shapes (zeros)."""
    import onnx
    from onnx import TensorProto, helper

    nodes, outs = [], []
    for name, shape in outputs.items():
        value = helper.make_tensor(name + "_value", TensorProto.FLOAT, shape, np.zeros(int(np.prod(shape)), np.float32))
        nodes.append(helper.make_node("Constant", [], [name], value=value))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 128, 128])
    graph = helper.make_graph(nodes, "fake", [images], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=v)
    path = tmp_path / "fake.onnx"
    onnx.save(model, str(path))
    return path


FLAT_OK = {"cate_preds": [1, 4 * 4 + 2 * 2, 3], "kernel_preds": [1, 20, 8], "mask_feats": [1, 8, 32, 32]}


def test_fake_flat_model_loads_with_metadata(tmp_path: Path) -> None:
    model = edgeseg.load(_fake(tmp_path, FLAT_OK, {"grids": "[4, 2]", "strides": "[8, 32]"}))
    assert model.spec.head == "solov2_flat" and model.spec.layout.grids == (4, 2)
    assert len(model(np.zeros((100, 120, 3), np.uint8))) == 0


@pytest.mark.parametrize(
    ("outputs", "meta", "expected"),
    [
        # G is not the sum of S^2 over the default grids (3872)
        (FLAT_OK, {}, ["cate_preds", "kernel_preds", "G = 20", "3872"]),
        # G does not match the metadata grids
        (FLAT_OK, {"grids": "[4, 3]", "strides": "[8, 32]"}, ["G = 20", "[4, 3]", "25"]),
        # kernel channels differ from the mask feature's
        ({**FLAT_OK, "kernel_preds": [1, 20, 16]}, {"grids": "[4, 2]"}, ["kernel", "E = 8", "mask_feats"]),
        # category scores and kernels over different points
        ({**FLAT_OK, "kernel_preds": [1, 21, 8]}, {"grids": "[4, 2]"}, ["20 points", "21"]),
        # strides do not give one per level
        (FLAT_OK, {"grids": "[4, 2]", "strides": "[8, 16, 32]"}, ["strides", "[8, 16, 32]"]),
        # per-level outputs whose kernels do not match the mask feature
        (
            {
                "cate_0": [1, 3, 4, 4],
                "cate_1": [1, 3, 2, 2],
                "kernel_0": [1, 6, 4, 4],
                "kernel_1": [1, 6, 2, 2],
                "mask_feat": [1, 8, 32, 32],
            },
            {"strides": "[8, 32]"},
            ["kernels", "E = 8", "mask_feat"],
        ),
        # per-level outputs with three tensors at one grid size
        (
            {
                "cate_0": [1, 3, 4, 4],
                "kernel_0": [1, 8, 4, 4],
                "extra": [1, 2, 4, 4],
                "mask_feat": [1, 8, 32, 32],
                "cate_1": [1, 3, 2, 2],
                "kernel_1": [1, 8, 2, 2],
                "x": [1, 1, 3, 3],
            },
            {"strides": "[8, 32]"},
            ["per level", "extra"],
        ),
    ],
    ids=["default-grids", "meta-grids", "kernel-channels", "points", "strides", "level-kernels", "level-triple"],
)
def test_almost_right_layouts_are_clear_errors(tmp_path: Path, outputs: dict, meta: dict, expected: list[str]) -> None:
    with pytest.raises(ModelError) as err:
        edgeseg.load(_fake(tmp_path, outputs, meta))
    for text in expected:
        assert text in str(err.value), str(err.value)


def test_core_validates_its_arguments() -> None:
    lb = _core.make_letterbox(100, 100, 128, 128, "keep_ratio")
    cate, kern, feat = (
        np.zeros((3, 4, 4), np.float32),
        np.zeros((8, 4, 4), np.float32),
        np.zeros((8, 32, 32), np.float32),
    )
    with pytest.raises(ValueError, match="channels"):
        _core.decode_solov2([cate], [np.zeros((4, 4, 4), np.float32)], feat, [8], lb)
    with pytest.raises(ValueError, match="one entry per level"):
        _core.decode_solov2([cate], [kern], feat, [8, 16], lb)
    with pytest.raises(ValueError, match="conf"):
        _core.decode_solov2([cate], [kern], feat, [8], lb, conf=2.0)
    with pytest.raises(ValueError, match="class_allowed"):
        _core.decode_solov2([cate], [kern], feat, [8], lb, class_allowed=np.ones(5, np.uint8))
    with pytest.raises(ValueError, match="does not reach"):
        centred = _core.make_letterbox(50, 100, 128, 128)  # padded 32 rows on top: a 4x4 feature never reaches
        _core.decode_solov2([cate], [kern], np.zeros((8, 4, 4), np.float32), [8], centred, mask_stride=1)
    assert len(_core.decode_solov2([cate], [kern], feat, [8], lb).scores) == 0
