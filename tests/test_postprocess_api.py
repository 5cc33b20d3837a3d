"""The core's whole-postprocess API (csrc/include/edgeseg/postprocess.hpp), which C++ users call and the Python
YOLO heads call too: its layout parser decides every YOLO model as ``edgeseg.load`` does, and bad layouts,
outputs and letterboxes are clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg import _core
from edgeseg.heads.base import PostprocessOptions

FIXTURES = Path(__file__).parent / "fixtures" / "yolov5"
YOLO_MODELS = [
    "yolov8n-seg.onnx",
    "yolov8n-seg-dynamic.onnx",
    "yolov8n-seg-e2e.onnx",
    "yolov8n-seg-320-dynint8.onnx",
    "yolo11n-seg-dynint8.onnx",
    "yolov8n-seg-int8-floatio.tflite",
    "yolo11n-seg-int8.tflite",
]
FIXTURE_MODELS = ["yolov5n-seg-160.onnx", "yolov5n-seg-160-tflite-layout.onnx", "gelan-c-seg-160.onnx",
                  "yolo26n-seg-160-e2e.onnx"]  # fmt: skip


def _model_path(name: str, shared: Path) -> Path:
    return FIXTURES / name if name in FIXTURE_MODELS else shared / "models" / name


@pytest.mark.parametrize("name", YOLO_MODELS + FIXTURE_MODELS)
def test_layout_parser_decides_as_edgeseg_load(name: str, shared: Path) -> None:
    model = edgeseg.load(_model_path(name, shared))
    rt = model.runtime
    core = _core.yolo_layout([o.shape for o in rt.outputs], rt.inputs[0].shape, rt.metadata)
    python = model.head.core_layout
    for field in ("head", "num_classes", "num_coeffs", "detections", "anchor_major", "prototypes",
                  "prototypes_nhwc"):  # fmt: skip
        assert getattr(core, field) == getattr(python, field), field
    # Normalized boxes are not in the metadata: edgeseg.load probes them with one inference.
    assert python.boxes_normalized == ("tflite" in name) and not core.boxes_normalized
    assert tuple(core.names) == tuple(model.names)[: len(core.names)]


def test_whole_postprocess_is_what_the_python_api_returns(shared: Path) -> None:
    # Two calls a C++ user makes (make_letterbox, postprocess_yolo) give Model.__call__'s instances.
    import cv2

    model = edgeseg.load(shared / "models" / "yolov8n-seg.onnx")
    rt = model.runtime
    layout = _core.yolo_layout([o.shape for o in rt.outputs], rt.inputs[0].shape, rt.metadata)
    for path in sorted((shared / "data" / "coco-val-mini" / "images").glob("*.jpg"))[:3]:
        image = cv2.imread(str(path))
        expected = model(image)
        tensor, (lb,) = model.preprocess([image])
        outputs = [o[0] for o in model.infer(tensor)]
        got = _core.postprocess_yolo(layout, outputs, [None, None], lb, PostprocessOptions())
        np.testing.assert_array_equal(got.boxes, expected.boxes)
        np.testing.assert_array_equal(got.class_ids, expected.class_ids)
        np.testing.assert_array_equal(got.masks.rects, expected.masks.rects)
        np.testing.assert_array_equal(got.masks.bits, expected.masks.data)
        assert len(got.scores) > 0


def test_parse_names_reads_ultralytics_metadata() -> None:
    assert _core.parse_names("{0: 'person', 1: \"it's\", 2: 'a, b: c'}") == ["person", "it's", "a, b: c"]
    assert _core.parse_names("['bolt', 'nut',]") == ["bolt", "nut"]
    for bad in ("", "{1: 'a'}", "{0: a}", "{0: 'a'", "['a'] x", "{}", "{0: 'a' 1: 'b'}"):
        with pytest.raises(ValueError, match="class names metadata"):
            _core.parse_names(bad)


def test_layout_parser_says_what_it_found() -> None:
    meta = {"names": "{0: 'a', 1: 'b'}", "stride": "32"}
    with pytest.raises(ValueError, match=r"two outputs.*found outputs \[1, 38, 8400\] and input"):
        _core.yolo_layout([[1, 38, 8400]], [1, 3, 640, 640], meta)
    with pytest.raises(ValueError, match="neither"):
        _core.yolo_layout([[1, 39, 8400], [1, 32, 160, 160]], [1, 3, 640, 640], meta)  # 3 classes, names say 2
    raw = _core.yolo_layout([[1, 38, 8400], [1, 32, 160, 160]], [1, 3, 640, 640], meta)
    assert (raw.head, raw.num_classes, raw.anchor_major, raw.names) == ("raw", 2, False, ["a", "b"])
    transposed = _core.yolo_layout([[1, 32, 160, 160], [1, 8400, 38]], [1, 3, 640, 640], meta)
    assert (transposed.detections, transposed.prototypes, transposed.anchor_major) == (1, 0, True)
    with pytest.raises(ValueError, match="class count"):
        _core.yolo_layout([[1, 300, 38], [1, 32, 160, 160]], [1, 3, 640, 640], {"end2end": "True"})


def test_bad_outputs_and_letterboxes_are_errors() -> None:
    layout = _core.YoloLayout(head="raw", num_classes=2, num_coeffs=4, detections=0, anchor_major=False,
                              prototypes=1, prototypes_nhwc=False, boxes_normalized=False)  # fmt: skip
    pred, protos = np.zeros((10, 64), np.float32), np.zeros((4, 8, 8), np.float32)
    lb = _core.make_letterbox(48, 64, 32, 32)
    opts = PostprocessOptions()
    assert len(_core.postprocess_yolo(layout, [pred, protos], [None, None], lb, opts).scores) == 0
    with pytest.raises(ValueError, match="outputs were given"):
        _core.postprocess_yolo(layout, [pred], [None], lb, opts)
    with pytest.raises(ValueError, match="3 prototypes, the layout 4 coefficients"):
        _core.postprocess_yolo(layout, [pred, protos[:3]], [None, None], lb, opts)
    with pytest.raises(ValueError, match="must have 3 dimensions"):
        _core.postprocess_yolo(layout, [pred, protos[None]], [None, None], lb, opts)
    with pytest.raises(ValueError, match="one quantization"):
        _core.postprocess_yolo(layout, [pred, protos], [None], lb, opts)
    with pytest.raises(ValueError, match="is quantized"):
        _core.postprocess_yolo(layout, [pred.astype(np.int8), protos], [None, None], lb, opts)
    with pytest.raises(ValueError, match="conf must be in"):
        _core.postprocess_yolo(layout, [pred, protos], [None, None], lb, PostprocessOptions(conf=2.0))
    with pytest.raises(ValueError, match="head must be"):
        _core.YoloLayout(head="v9", num_classes=2, num_coeffs=4, detections=0, anchor_major=False, prototypes=1,
                         prototypes_nhwc=False, boxes_normalized=False)  # fmt: skip


FAMILY_MODELS = [
    "yolov5/yolov5n-seg-160.onnx",
    "yolov5/yolov5n-seg-160-rknn-split.onnx",
    "yolact/yolact_boxes.onnx",
    "yolact/yolact_loc.onnx",
    "rtmdet/rtmdet_ins_raw.onnx",
    "solov2/solov2_flat.onnx",
    "solov2/solov2_levels.onnx",
    "dets/torchvision-maskrcnn.onnx",
    "dets/mmdet-maskrcnn",
]


def test_info_cpp_snippets_compile_against_the_header(tmp_path: Path) -> None:
    # `edgeseg info --cpp` writes C++ for every family's layout; each must compile against postprocess.hpp.
    import shutil
    import subprocess

    from edgeseg.cpp import layout_snippet

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    include = Path(__file__).resolve().parents[1] / "csrc" / "include"
    bodies = []
    for i, name in enumerate(FAMILY_MODELS):
        snippet = layout_snippet(edgeseg.load(FIXTURES.parent / name))
        assert "layout" in snippet and "edgeseg::postprocess_" in snippet
        bodies.append(
            f"edgeseg::Instances run{i}(const std::vector<edgeseg::Tensor>& outputs, int64_t image_h, "
            f"int64_t image_w, int64_t input_h, int64_t input_w) {{\n{snippet}\n(void)input_h; (void)input_w;\n"
            "return found;\n}\n"
        )
    source = tmp_path / "snippets.cpp"
    source.write_text('#include "edgeseg/postprocess.hpp"\n' + "\n".join(bodies))
    run = subprocess.run([compiler, "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", f"-I{include}", str(source)],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
