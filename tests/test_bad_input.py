"""Bad input gives a clear Python exception (or a logged warning), never a crash.

Every failure must be a ``ValueError`` (``edgeseg.ImageError`` / ``edgeseg.ModelError`` are
subclasses) whose message names the problem.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg import ImageError, ModelError, _core

from conftest import IMAGES, MODELS, require_shared

IMAGE = "000000000139.jpg"  # 426x640, ten detections with the default thresholds
MODEL = "yolov8n-seg.onnx"
BROKEN = "broken/yolo11n-seg-qdq-collapsed.onnx"


@pytest.fixture(scope="module")
def model() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(MODELS / MODEL)


@pytest.fixture(scope="module")
def e2e_model() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(MODELS / "yolov8n-seg-e2e.onnx")


@pytest.fixture(scope="module")
def image_path() -> Path:
    require_shared()
    return IMAGES / IMAGE


# --------------------------------------------------------------------------------------- images


def test_missing_image_file(model: edgeseg.Model, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match="no such image file") as info:
        model(missing)
    assert "nope.jpg" in str(info.value)
    with pytest.raises(ImageError, match="no such image file"):
        model(str(missing))


def test_directory_as_image(model: edgeseg.Model, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such image file"):
        model(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(), id="random"),
        pytest.param(b"", id="empty"),
        pytest.param(b"this is not an image\n", id="text"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\x00" * 64, id="jpeg-magic-only"),
    ],
)
def test_undecodable_image_file(model: edgeseg.Model, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=r"cannot decode|truncated|empty") as info:
        model(path)
    assert "corrupt.jpg" in str(info.value)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.95])
def test_truncated_jpeg(model: edgeseg.Model, image_path: Path, tmp_path: Path, fraction: float) -> None:
    data = image_path.read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: int(len(data) * fraction)])
    # OpenCV 4.x decodes a truncated JPEG partially (grey below the cut): edgeseg refuses it.
    with pytest.raises(ImageError, match=r"truncated\.jpg"):
        model(path)


def test_jpeg_with_garbage_body(model: edgeseg.Model, image_path: Path, tmp_path: Path) -> None:
    data = bytearray(image_path.read_bytes())
    rng = np.random.default_rng(1)
    data[1000:] = rng.integers(0, 256, len(data) - 1000, dtype=np.uint8).tobytes()
    path = tmp_path / "garbage.jpg"
    path.write_bytes(bytes(data))
    try:
        result = model(path)
    except ImageError as exc:
        assert "garbage.jpg" in str(exc)
    else:
        assert isinstance(result, edgeseg.Result)
        assert result.image_shape == (426, 640)


@pytest.mark.parametrize("shape", [(64, 64, 2), (64, 64, 5), (1, 64, 64, 3), (64,)])
def test_wrong_array_shape(model: edgeseg.Model, shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageError, match="shape") as info:
        model(np.zeros(shape, np.uint8))
    assert str(shape) in str(info.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.bool_])
def test_wrong_array_dtype(model: edgeseg.Model, dtype: type) -> None:
    with pytest.raises(ImageError, match="uint8") as info:
        model(np.zeros((64, 64, 3), dtype))
    assert np.dtype(dtype).name in str(info.value)


def test_empty_list(model: edgeseg.Model) -> None:
    with pytest.raises(ValueError, match="no images"):
        model([])


@pytest.mark.parametrize(
    "shape",
    [
        (0, 0, 3),
        (0, 10, 3),
        (10, 0, 3),
        (0, 0, 4),
        (0, 0),
        (10, 0),
        (0, 0, 1),
    ],
)
def test_zero_size_array(model: edgeseg.Model, shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageError, match="no pixels"):
        model(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("obj", [42, 1.5, None, object()], ids=["int", "float", "None", "object"])
def test_non_image_object(model: edgeseg.Model, obj: object) -> None:
    with pytest.raises(ImageError, match="expected an image path") as info:
        model(obj)
    assert type(obj).__name__ in str(info.value)


def test_non_image_object_in_list(model: edgeseg.Model, image_path: Path) -> None:
    with pytest.raises(ImageError, match="got int"):
        model([image_path, 5])


def test_bytes_path(model: edgeseg.Model, image_path: Path) -> None:
    try:
        result = model(str(image_path).encode())
    except ImageError as exc:
        assert "bytes" in str(exc)
    else:
        assert isinstance(result, edgeseg.Result)


# ---------------------------------------------------------------------------------- model files


def test_text_file_named_onnx(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("this is not an ONNX model\n")
    with pytest.raises(ModelError, match="cannot load") as info:
        edgeseg.load(path)
    assert "model.onnx" in str(info.value)


def test_empty_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelError, match="cannot load"):
        edgeseg.load(path)


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model file") as info:
        edgeseg.load(tmp_path / "missing.onnx")
    assert "missing.onnx" in str(info.value)
    with pytest.raises(ModelError, match=r"needs exactly one model file .* found no \.onnx or \.tflite file"):
        edgeseg.load(tmp_path)  # a folder (a work directory) without a model


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "yolov8n-seg.pt"
    path.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(ModelError, match=r"unsupported model format '\.pt'"):
        edgeseg.load(path)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.999])
def test_truncated_onnx(tmp_path: Path, fraction: float) -> None:
    require_shared()
    data = (MODELS / MODEL).read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelError, match="cannot load") as info:
        edgeseg.load(path)
    assert "truncated.onnx" in str(info.value)


def test_collapsed_quantization_model(image_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_shared()
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        broken = edgeseg.load(MODELS / BROKEN)
        results = [broken(image_path), broken(image_path, conf=0.01)]
    warned = any(r.name.startswith("edgeseg") for r in caplog.records)
    for result in results:
        assert isinstance(result, edgeseg.Result)
        assert result.image_shape == (426, 640)
        assert len(result) == 0 or warned


# ------------------------------------------------------------------------------ call parameters


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conf": 1.5}, "conf"),
        ({"conf": -0.1}, "conf"),
        ({"conf": float("nan")}, "conf"),
        ({"iou": -1}, "iou"),
        ({"iou": 1.5}, "iou"),
        ({"max_det": -1}, "max_det"),
        ({"pre_nms_topk": 0}, "pre_nms_topk"),
    ],
)
def test_invalid_parameters(model: edgeseg.Model, image_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model(image_path, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conf": 1.5}, "conf"),
        ({"max_det": -1}, "max_det"),
        ({"iou": -1}, "iou"),
    ],
)
def test_invalid_parameters_e2e(e2e_model: edgeseg.Model, image_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        e2e_model(image_path, **kwargs)


def test_unknown_class_name(model: edgeseg.Model, image_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown class name 'unicorn'"):
        model(image_path, classes=["person", "unicorn"])


@pytest.mark.parametrize("cls", [80, -1, 1000, 1.0])
def test_class_out_of_range(model: edgeseg.Model, image_path: Path, cls: object) -> None:
    with pytest.raises(ValueError, match=r"\[0, 80\)") as info:
        model(image_path, classes=[cls])
    assert repr(cls) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": 0}, "threads"),
        ({"session_options": {"no_such_option": 1}}, "no_such_option"),
        ({"imgsz": 320}, "fixed 640x640"),
        ({"imgsz": 100}, "multiple of the stride"),
        ({"max_batch": 0}, "max_batch"),
    ],
)
def test_invalid_load_options(kwargs: dict, message: str) -> None:
    require_shared()
    with pytest.raises(ValueError, match=message):
        edgeseg.load(MODELS / MODEL, **kwargs)


@pytest.mark.parametrize("model_file", [MODEL, "yolov8n-seg-dynamic.onnx"])
def test_wrong_number_of_names(image_path: Path, model_file: str) -> None:
    try:
        model = edgeseg.load(MODELS / model_file, names=["a", "b"])
    except ValueError as exc:
        msg = str(exc)
    else:
        with pytest.raises(ValueError) as info:
            model(image_path)
        msg = str(info.value)
    assert "names" in msg
    assert re.search(r"\b80\b", msg), msg


# ------------------------------------------------------------------------ unsupported layouts


def _save_onnx(path: Path, nodes: list, inputs: list, outputs: list, initializers: list, meta: dict) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for key, value in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def _classifier_onnx(path: Path, meta: dict) -> Path:
    """images [1, 3, 64, 64] -> Flatten -> Slice -> logits [1, 10]."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([10], np.int64), "ends"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Flatten", ["images"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["logits"]),
    ]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    return _save_onnx(path, nodes, [x], [y], inits, meta)


def test_unsupported_layout_names_tensors(tmp_path: Path) -> None:
    path = _classifier_onnx(tmp_path / "classifier.onnx", {})
    with pytest.raises(ModelError) as info:
        edgeseg.load(path)
    msg = str(info.value)
    assert "classifier.onnx" in msg
    assert "found inputs: images [1, 3, 64, 64] float32" in msg
    assert "found outputs: logits [1, 10] float32" in msg
    assert "Supported layouts" in msg


def test_non_segmentation_task(tmp_path: Path) -> None:
    path = _classifier_onnx(tmp_path / "detector.onnx", {"task": "detect"})
    with pytest.raises(ModelError, match="task='detect'") as info:
        edgeseg.load(path)
    assert "found outputs: logits [1, 10]" in str(info.value)


# ------------------------------------------------------------------------- NaN in raw outputs

NC, NM, ANCHORS = 80, 32, 200


def _raw_prediction() -> np.ndarray:
    """A plausible [4 + 80 + 32, anchors] raw head output with five confident anchors."""
    rng = np.random.default_rng(0)
    pred = np.zeros((4 + NC + NM, ANCHORS), np.float32)
    pred[0:2] = rng.uniform(100, 500, (2, ANCHORS))
    pred[2:4] = rng.uniform(10, 80, (2, ANCHORS))
    pred[4 : 4 + NC] = rng.uniform(0, 0.2, (NC, ANCHORS))
    pred[4, :5] = 0.9
    pred[4 + NC :] = rng.normal(0, 1, (NM, ANCHORS))
    return pred


def _decode(pred: np.ndarray) -> tuple:
    return _core.decode_yolo(pred, NC, 0.25, 0.7, 300, 30000, False)


def test_decode_clean_prediction() -> None:
    boxes, scores, _classes, coeffs = _decode(_raw_prediction())
    assert len(scores) == 5 and boxes.shape == (5, 4) and coeffs.shape == (5, NM)


@pytest.mark.parametrize("anchor_major", [False, True])
def test_decode_nan_scores(anchor_major: bool) -> None:
    pred = _raw_prediction()
    pred[4 + 7, 50] = np.nan  # a low-scoring anchor: the NaN must not be silently ignored
    if anchor_major:
        pred = np.ascontiguousarray(pred.T).T  # strided view, as the head passes transposed outputs
    with pytest.raises(ValueError, match="NaN or infinite class scores"):
        _decode(pred)


def test_decode_all_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        _decode(np.full((4 + NC + NM, ANCHORS), np.nan, np.float32))


def test_decode_nan_box() -> None:
    pred = _raw_prediction()
    pred[2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite box coordinates"):
        _decode(pred)


def test_decode_nan_coefficients() -> None:
    pred = _raw_prediction()
    pred[4 + NC + 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite mask coefficients"):
        _decode(pred)


def test_decode_infinite_score() -> None:
    pred = _raw_prediction()
    pred[4, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        _decode(pred)


def _e2e_rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = np.zeros((300, 6 + NM), np.float32)
    rows[:3, :4] = [[10, 10, 100, 100], [200, 200, 300, 300], [50, 60, 90, 120]]
    rows[:3, 4] = [0.9, 0.8, 0.7]
    rows[:3, 5] = [0, 1, 2]
    rows[:3, 6:] = rng.normal(0, 1, (3, NM))
    return rows


def test_decode_e2e_nan_box() -> None:
    rows = _e2e_rows()
    rows[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite box coordinates"):
        _core.decode_yolo_e2e(rows, NC, 0.25, 300)


def test_decode_e2e_nan_class() -> None:
    rows = _e2e_rows()
    rows[1, 5] = np.nan
    with pytest.raises(ValueError, match="class id nan"):
        _core.decode_yolo_e2e(rows, NC, 0.25, 300)


def test_decode_e2e_nan_score() -> None:
    rows = _e2e_rows()
    rows[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _core.decode_yolo_e2e(rows, NC, 0.25, 300)


def _mask_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    protos = rng.normal(0, 1, (NM, 160, 160)).astype(np.float32)
    coeffs = rng.normal(0, 1, (2, NM)).astype(np.float32)
    boxes = np.array([[10, 10, 200, 200], [300, 300, 500, 400]], np.float32)
    return protos, coeffs, boxes


@pytest.mark.parametrize("soft", [False, True])
def test_assemble_masks_nan_prototypes(soft: bool) -> None:
    protos, coeffs, boxes = _mask_inputs()
    keep, *_ = _core.assemble_masks(protos, coeffs, boxes, (640, 640), (480, 640), soft=soft)
    assert len(keep) == 2
    protos[:, 40:45, 25:30] = np.nan  # inside the first box (image y 80..280 -> input 90..280)
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        _core.assemble_masks(protos, coeffs, boxes, (640, 640), (480, 640), soft=soft)
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        _core.assemble_masks(np.full_like(protos, np.nan), coeffs, boxes, (640, 640), (480, 640), soft=soft)


def test_assemble_masks_nan_coefficients_and_boxes() -> None:
    protos, coeffs, boxes = _mask_inputs()
    bad = coeffs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        _core.assemble_masks(protos, bad, boxes, (640, 640), (480, 640))
    bad = boxes.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="boxes contain NaN"):
        _core.assemble_masks(protos, coeffs, bad, (640, 640), (480, 640))


def test_nms_nan() -> None:
    boxes = np.array([[0, 0, 10, 10], [np.nan, 0, 10, 10]], np.float32)
    with pytest.raises(ValueError, match="boxes contain NaN"):
        _core.nms(boxes, np.array([0.9, 0.8], np.float32))
    with pytest.raises(ValueError, match="scores contain NaN"):
        _core.nms(boxes[:1], np.array([np.nan], np.float32))


def _constant_seg_onnx(path: Path, det: np.ndarray, protos: np.ndarray) -> Path:
    """A model with input [1, 3, 128, 128] whose outputs are fixed tensors (plus 0 x the input mean)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),
        helper.make_node("Add", ["det", "z"], ["output0"]),
        helper.make_node("Add", ["protos", "z"], ["output1"]),
    ]
    inits = [
        numpy_helper.from_array(det, "det"),
        numpy_helper.from_array(protos, "protos"),
        numpy_helper.from_array(np.float32(0), "zero"),
    ]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 128, 128])
    o0 = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(det.shape))
    o1 = helper.make_tensor_value_info("output1", TensorProto.FLOAT, list(protos.shape))
    meta = {"task": "segment", "imgsz": "[128, 128]", "stride": "32"}
    return _save_onnx(path, nodes, [x], [o0, o1], inits, meta)


def _constant_outputs() -> tuple[np.ndarray, np.ndarray]:
    anchors = 16 * 16 + 8 * 8 + 4 * 4  # strides 8, 16, 32 on 128x128
    det = np.zeros((1, 4 + NC + NM, anchors), np.float32)
    det[0, 0:2, :] = 64  # box centre
    det[0, 2:4, :] = 40  # box size
    det[0, 4, 0] = 0.9  # anchor 0: a person
    det[0, 4 + NC :, 0] = 1.0
    return det, np.ones((1, NM, 32, 32), np.float32)


def test_model_with_nan_outputs(tmp_path: Path) -> None:
    image = np.full((128, 128, 3), 100, np.uint8)
    det, protos = _constant_outputs()
    clean = edgeseg.load(_constant_seg_onnx(tmp_path / "clean.onnx", det, protos))
    result = clean(image)
    assert result.labels == ["person"]
    np.testing.assert_allclose(result.boxes, [[44, 44, 84, 84]])

    nan_scores = det.copy()
    nan_scores[0, 4 + 10, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite class scores"):
        edgeseg.load(_constant_seg_onnx(tmp_path / "nan_scores.onnx", nan_scores, protos))(image)

    nan_protos = np.full_like(protos, np.nan)
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        edgeseg.load(_constant_seg_onnx(tmp_path / "nan_protos.onnx", det, nan_protos))(image)


# ------------------------------------------------------------------------------------ providers


@pytest.mark.parametrize("provider", ["cuda", "no-such-provider"])
def test_unavailable_provider_falls_back_to_cpu(
    image_path: Path, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    ort = pytest.importorskip("onnxruntime")
    if provider == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        model = edgeseg.load(MODELS / MODEL, providers=[provider])
    warnings = [r for r in caplog.records if r.name == "edgeseg" and r.levelno == logging.WARNING]
    assert warnings, "no warning logged for an unavailable provider"
    text = warnings[0].getMessage()
    assert "not available" in text
    assert ("CUDAExecutionProvider" if provider == "cuda" else provider) in text
    assert model.runtime.providers == ["CPUExecutionProvider"]
    assert len(model(image_path)) > 0


def test_decode_scores_above_one_are_an_error() -> None:
    # Logits where probabilities belong (a graph without its sigmoid) used to pass every threshold.
    pred = _raw_prediction()
    pred[4, 7] = 6.5
    with pytest.raises(ValueError, match="class scores above 1"):
        _decode(pred)
    rows = _e2e_rows()
    rows[1, 4] = 3.0
    with pytest.raises(ValueError, match="class scores above 1"):
        _core.decode_yolo_e2e(rows, NC, 0.25, 300)
    pred[4, 7] = 1.0  # a saturated sigmoid is fine
    assert len(_decode(pred)[1]) >= 1


def test_decode_e2e_fractional_class_id_is_an_error() -> None:
    rows = _e2e_rows()
    rows[2, 5] = 1.5
    with pytest.raises(ValueError, match="not a whole number"):
        _core.decode_yolo_e2e(rows, NC, 0.25, 300)
