"""Split YOLO heads for NPUs (issue: NPU layouts): RKNN, Hailo, Qualcomm AI Hub and EdgeFirst layouts made from
the real yolov8n-seg.onnx by graph surgery (``edgeseg.headsplit``), float and quantized per tensor by
``edgeseg quantize --split-head``.

- Float layouts: the same detections and masks as the fused model on every coco-val-mini image.
- Int8 layouts (every output int8/uint8 with its own scale): decoded in the integer domain, the same as the
  float decoding of the same quantized model's dequantized outputs (the TFLite parity criteria).
- Outputs are matched by shape and name, not position; layouts that are almost right are clear errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg import _core
from edgeseg.errors import ModelError
from edgeseg.headsplit import SPLIT_LAYOUTS, split_head

from conftest import IMAGES, MODELS, SHARED, require_shared
from parity import Comparison, compare_image

FUSED = MODELS / "yolov8n-seg.onnx"
CALIB = SHARED / "data" / "coco128-train" / "images"
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def images() -> list[Path]:
    require_shared()
    found = sorted(IMAGES.glob("*.jpg"))
    assert len(found) == 79
    return found


@pytest.fixture(scope="module")
def fused_results(images: list[Path]) -> dict[int, list[dict]]:
    model = edgeseg.load(FUSED)
    return {int(p.stem): model(p).to_coco(int(p.stem)) for p in images}


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_shared()
    return tmp_path_factory.mktemp("split")


def _split(split_dir: Path, layout: str) -> Path:
    out = split_dir / f"{layout}.onnx"
    if not out.exists():
        split_head(FUSED, out, layout)
    return out


def _quantized(split_dir: Path, layout: str) -> Path:
    out = split_dir / f"{layout}-int8.onnx"
    if not out.exists():
        from edgeseg.quantize import quantize

        quantize(FUSED, CALIB, out, calib_size=8, split_head=layout, progress=False)
    return out


def _compare(model: edgeseg.Model, images: list[Path], reference: dict[int, list[dict]]) -> Comparison:
    cmp = Comparison()
    for p in images:
        image_id = int(p.stem)
        compare_image(model(p).to_coco(image_id), reference[image_id], image_id, cmp)
    return cmp


def _assert_parity(cmp: Comparison, box_iou: float, score: float) -> None:
    assert not cmp.count_mismatches, cmp.count_mismatches[:10]
    assert not cmp.unmatched, cmp.unmatched[:10]
    assert min(cmp.box_ious) >= box_iou, cmp.summary()
    assert max(cmp.score_errors) <= score, cmp.summary()
    mask_ious = np.array(cmp.mask_ious)
    assert mask_ious.mean() >= 0.97 and (mask_ious >= 0.9).mean() >= 0.90, cmp.summary()


HEADS = {"rknn": "yolo_levels", "hailo": "yolo_levels", "qai": "yolo_scored", "edgefirst": "yolo_two_way"}


@pytest.mark.parametrize("layout", SPLIT_LAYOUTS)
def test_float_split_equals_fused(layout: str, split_dir: Path, images, fused_results) -> None:
    model = edgeseg.load(_split(split_dir, layout))
    assert (model.spec.family, model.spec.head) == ("yolo_split", HEADS[layout])
    assert model.spec.num_classes == 80 and model.spec.names[0] == "person"
    cmp = _compare(model, images, fused_results)
    # The same weights: only the float rounding of the box decoding (DFL in the core instead of the graph) differs.
    _assert_parity(cmp, box_iou=0.999, score=1e-5)
    assert np.mean(cmp.mask_ious) >= 0.999, cmp.summary()


@pytest.mark.parametrize("layout", SPLIT_LAYOUTS)
def test_int8_split_decodes_in_integer_domain(layout: str, split_dir: Path, images) -> None:
    model = edgeseg.load(_quantized(split_dir, layout))
    assert model.spec.family == "yolo_split"
    # every output quantized with its own scale (Qualcomm's class ids are plain integers)
    assert all(o.dtype != np.float32 for o in model.spec.outputs)
    assert all(o.scale is not None for o in model.spec.outputs if o.name != "class_idx")
    assert len({o.scale for o in model.spec.outputs}) > 2
    # The float reference of the same quantized model: its outputs dequantized, decoded by the float layout
    # (the float split model has the same outputs, names and order, in float32).
    float_model = edgeseg.load(_split(split_dir, layout))
    options = model.options()
    cmp, found = Comparison(), 0
    for p in images:
        image_id = int(p.stem)
        tensor, boxes = model.preprocess([edgeseg.io.read_image(p)])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, boxes, options)[0]
        real = [info.dequantize(o) if info.scale is not None else o for info, o in zip(model.spec.outputs, outputs)]
        reference = float_model.postprocess(real, boxes, options)[0]
        found += len(reference)
        compare_image(ours.to_coco(image_id), reference.to_coco(image_id), image_id, cmp)
    _assert_parity(cmp, box_iou=0.99, score=1e-3)
    assert found > 300  # the quantized model still finds things


def test_outputs_matched_by_shape_and_name_not_position(split_dir: Path, images, fused_results) -> None:
    """RKNN outputs in a shuffled order give the same predictions."""
    m = onnx.load(str(_split(split_dir, "rknn")))
    outs = list(m.graph.output)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(outs))
    del m.graph.output[:]
    m.graph.output.extend([outs[i] for i in order])
    path = split_dir / "rknn-shuffled.onnx"
    onnx.save(m, str(path))
    model = edgeseg.load(path)
    assert [o.name for o in model.spec.outputs] == [outs[i].name for i in order]
    _assert_parity(_compare(model, images[:12], fused_results), box_iou=0.999, score=1e-5)


def test_info_names_layout_and_roles(split_dir: Path) -> None:
    text = edgeseg.load(_split(split_dir, "rknn")).spec.describe()
    assert "yolo_split" in text and "Rockchip RKNN" in text
    assert "stride 8 score sum" in text and "strides:     8, 16, 32 (16 DFL bins)" in text
    text = edgeseg.load(_split(split_dir, "hailo")).spec.describe()
    assert "Hailo-style NHWC" in text and "stride 32 box distributions" in text


def test_health_check_reads_split_scores(split_dir: Path) -> None:
    model = edgeseg.load(_quantized(split_dir, "rknn"))
    image = np.full((480, 640, 3), 114, np.uint8)
    tensor, _ = model.preprocess([image])
    outputs = model.infer(tensor)
    assert 0.0 <= model.head.max_class_score(outputs, 0) <= 1.01


def _level(rng: np.random.Generator, nc=3, nm=4, h=2, w=3, bins=16, dtype=np.float32) -> dict:
    cells = h * w
    level = {
        "boxes": rng.normal(size=(4 * bins, cells)).astype(np.float32),
        "scores": rng.uniform(0, 1, size=(nc, cells)).astype(np.float32),
        "coefficients": rng.normal(size=(nm, cells)).astype(np.float32),
        "grid_hw": (h, w),
        "stride": 8.0,
    }
    return level


def test_core_split_decoder_matches_numpy() -> None:
    """The DFL expectation, anchors and score threshold against a direct numpy computation."""
    rng = np.random.default_rng(0)
    lv = _level(rng, nc=3, nm=4, h=4, w=5)
    d = _core.decode_yolo_split([lv], 3, 0.5, 1.0, 300, 30000, False)
    scores = lv["scores"]
    keep = np.flatnonzero(scores.max(0) > 0.5)
    assert sorted(d.scores.tolist()) == sorted(scores.max(0)[keep].tolist())
    logits = lv["boxes"].reshape(4, 16, -1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    dist = (p / p.sum(1, keepdims=True) * np.arange(16)[None, :, None]).sum(1)  # (4, cells)
    ys, xs = np.divmod(np.arange(20), 5)
    ax, ay = xs + 0.5, ys + 0.5
    boxes = np.stack([ax - dist[0], ay - dist[1], ax + dist[2], ay + dist[3]], 1) * 8.0
    order = np.argsort(-scores.max(0)[keep], kind="stable")
    np.testing.assert_allclose(d.boxes, boxes[keep][order], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(d.coefficients, lv["coefficients"][:, keep[order]].T, rtol=1e-6)
    np.testing.assert_array_equal(d.class_ids, scores.argmax(0)[keep][order])


def test_core_score_sum_filter_is_exact() -> None:
    """Cells whose score sum rules them out are skipped; the result is the same as without the sums."""
    rng = np.random.default_rng(1)
    lv = _level(rng, nc=5, h=8, w=8)
    lv["scores"] = (lv["scores"] ** 6).astype(np.float32)
    lv["score_sum"] = np.minimum(lv["scores"].sum(0, keepdims=True), 1).astype(np.float32)
    with_sum = _core.decode_yolo_split([lv], 5, 0.3, 0.7, 300, 30000, False)
    del lv["score_sum"]
    without = _core.decode_yolo_split([lv], 5, 0.3, 0.7, 300, 30000, False)
    assert len(with_sum.scores) > 0
    np.testing.assert_array_equal(with_sum.boxes, without.boxes)
    np.testing.assert_array_equal(with_sum.scores, without.scores)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda lv: lv.update(coefficients=lv["coefficients"][:3]), "coefficients of level 1 have 3 channels"),
        (lambda lv: lv.update(scores=lv["scores"][:2]), "expected one per class"),
        (lambda lv: lv.update(boxes=lv["boxes"][:62]), "expected 4 sides"),
        (lambda lv: lv.update(grid_hw=(3, 3)), "the 3x3 grid has 9"),
        (lambda lv: lv.update(stride=0.0), "stride of level 1 must be positive"),
        (lambda lv: lv.update(score_sum=np.zeros((2, 6), np.float32)), "expected 1"),
        (lambda lv: lv.update(scores=np.full((3, 6), np.nan, np.float32)), "NaN or infinite class scores"),
        (lambda lv: lv.update(scores=np.full((3, 6), 7.0, np.float32)), "class scores above 1"),
        (lambda lv: lv.update(scores=lv["scores"].astype(np.uint8)), "pass its quantization"),
    ],
)
def test_core_split_decoder_rejects_bad_levels(change, message: str) -> None:
    rng = np.random.default_rng(2)
    levels = [_level(rng), _level(rng)]
    change(levels[1])
    with pytest.raises(ValueError, match=message):
        _core.decode_yolo_split(levels, 3, 0.25, 0.7, 300, 30000, False)


def test_almost_right_split_models_are_clear_errors(split_dir: Path) -> None:
    """A stride whose coefficients do not match the prototypes names the tensors and what was expected."""
    m = onnx.load(str(_split(split_dir, "rknn")))
    g = m.graph
    # drop one coefficient channel of stride 16: Slice seg1 to 31 channels
    for node in g.node:
        node.output[:] = ["seg1_full" if x == "seg1" else x for x in node.output]
    g.initializer.extend([
        onnx.numpy_helper.from_array(np.array([0], np.int64), "c0"),
        onnx.numpy_helper.from_array(np.array([31], np.int64), "c31"),
        onnx.numpy_helper.from_array(np.array([1], np.int64), "c1"),
    ])  # fmt: skip
    g.node.append(onnx.helper.make_node("Slice", ["seg1_full", "c0", "c31", "c1"], ["seg1"]))
    for o in g.output:
        if o.name == "seg1":
            o.type.tensor_type.shape.dim[1].dim_value = 31
    path = split_dir / "rknn-bad.onnx"
    onnx.save(m, str(path))
    with pytest.raises(ModelError, match=r"stride 16: cannot tell .* seg1 \(31 channels\)") as err:
        edgeseg.load(path)
    assert "yolo_split" in str(err.value)  # the supported layouts are listed


def test_split_head_never_overwrites_its_input(tmp_path: Path) -> None:
    require_shared()
    copy = tmp_path / "m.onnx"
    copy.write_bytes(FUSED.read_bytes())
    with pytest.raises(ValueError, match="overwrite"):
        split_head(copy, copy, "rknn")
    with pytest.raises(ValueError, match="layout must be one of"):
        split_head(copy, tmp_path / "x.onnx", "tensorrt")


def test_int8_arrays_from_an_npu_runtime(split_dir: Path, images) -> None:
    """An NPU runtime returns int8 arrays with their own scales for a model loaded from its float ONNX file:
    ``with_output_quant`` decodes them in the integer domain, as the float arrays they stand for."""
    float_model = edgeseg.load(_split(split_dir, "rknn"))
    int8_model = edgeseg.load(_quantized(split_dir, "rknn"))  # stands in for the NPU: its raw integer outputs
    quant = {o.name: (np.dtype(o.dtype).name, o.scale, o.zero_point) for o in int8_model.spec.outputs}
    npu = float_model.with_output_quant(quant)
    options = npu.options()
    for p in images[:8]:
        tensor, boxes = int8_model.preprocess([edgeseg.io.read_image(p)])
        raw = int8_model.infer(tensor)
        ours = npu.postprocess(raw, boxes, options)[0]
        real = [info.dequantize(o) for info, o in zip(int8_model.spec.outputs, raw)]
        reference = float_model.postprocess(real, boxes, options)[0]
        cmp = Comparison()
        compare_image(ours.to_coco(int(p.stem)), reference.to_coco(int(p.stem)), int(p.stem), cmp)
        assert not cmp.count_mismatches and not cmp.unmatched, cmp.summary()
    with pytest.raises(ValueError, match="no output named nope"):
        float_model.with_output_quant({"nope": ("int8", 0.1, 0)})
    with pytest.raises(ValueError, match="dtype must be int8 or uint8"):
        float_model.with_output_quant({"box0": ("float32", 0.1, 0)})


def test_quantize_split_head_from_the_command_line(tmp_path: Path, capsys) -> None:
    from edgeseg.cli import main

    require_shared()
    out = tmp_path / "rknn-int8.onnx"
    args = ["quantize", str(FUSED), "--calib", str(CALIB), "-o", str(out), "--calib-size", "2", "--split-head", "rknn"]
    assert main([*args, "-q"]) == 0
    assert "head split as rknn" in capsys.readouterr().out
    model = edgeseg.load(out)
    assert model.spec.head == "yolo_levels" and all(o.dtype == np.uint8 for o in model.spec.outputs)
    copy = tmp_path / "fused.onnx"
    copy.write_bytes(FUSED.read_bytes())
    before = copy.read_bytes()
    assert main(["quantize", str(copy), "--calib", str(CALIB), "-o", str(copy), "--split-head", "rknn", "-q"]) == 2
    assert "would overwrite the input model" in capsys.readouterr().err
    assert copy.read_bytes() == before


def test_split_head_rejects_what_it_cannot_read(tmp_path: Path, split_dir: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        split_head(junk, tmp_path / "out.onnx", "rknn")
    with pytest.raises(ModelError, match=r"expected a fused Ultralytics export .* rank"):
        split_head(_split(split_dir, "rknn"), tmp_path / "out.onnx", "hailo")  # already split: 13 outputs
    assert not (tmp_path / "out.onnx").exists() and not list(tmp_path.glob(".*partial"))


def test_yolo11_dynamic_int8_export_splits(split_dir: Path, images) -> None:
    """YOLO11 heads split too, also after ONNX Runtime's dynamic quantization replaced the branch convolutions
    (found by their output tensors' names). The fused graph computes the DFL expectation on dynamically quantized
    activations, the split one leaves it to edgeseg in float: boxes within a few pixels, the same scores, so every
    fused detection is found again (NMS on the slightly different boxes may keep an extra one)."""
    source = MODELS / "yolo11n-seg-dynint8.onnx"
    out = split_dir / "yolo11-rknn.onnx"
    split_head(source, out, "rknn")
    fused, split = edgeseg.load(source), edgeseg.load(out)
    assert split.spec.head == "yolo_levels" and split.spec.num_classes == 80
    cmp = Comparison()
    for p in images[:10]:
        image_id = int(p.stem)
        compare_image(split(p).to_coco(image_id), fused(p).to_coco(image_id), image_id, cmp)
    assert not cmp.unmatched and len(cmp.count_mismatches) <= 1, cmp.summary()
    assert max(cmp.score_errors) <= 1e-5, cmp.summary()
    assert min(cmp.box_ious) >= 0.9 and np.mean(cmp.box_ious) >= 0.97, cmp.summary()
    assert np.mean(cmp.mask_ious) >= 0.95, cmp.summary()
