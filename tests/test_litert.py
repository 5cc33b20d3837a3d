"""LiteRT models: the int8-domain decode against the float decode of the same dequantized outputs,
input quantization, and clear errors for bad delegates and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg import _core
from edgeseg.io import read_image
from edgeseg.preprocess import make_input, quantize_table

from conftest import IMAGES, MODELS, require_shared

pytest.importorskip("ai_edge_litert")

INT8 = MODELS / "yolo11n-seg-int8.tflite"


@pytest.fixture(scope="module")
def model() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(INT8)


def _raw_outputs(model: edgeseg.Model, path: Path):
    image = read_image(path)
    tensor, (lb,) = make_input([image], model.spec, model.spec.imgsz, batch=1)
    return model.runtime.run({model.spec.input.name: tensor}), lb


def test_spec_reads_quantization_and_layout(model: edgeseg.Model) -> None:
    spec = model.spec
    assert spec.input_layout == "NHWC" and spec.input.dtype == np.int8 and spec.input.scale > 0
    assert spec.layout.prototypes_nhwc and spec.layout.boxes_normalized and spec.num_classes == 80
    det = spec.outputs[spec.layout.detections_output]
    assert det.dtype == np.int8 and det.scale is not None and det.zero_point is not None
    assert spec.names[0] == "person"  # no metadata: COCO names for 80 classes


@pytest.mark.parametrize("conf", [0.25, 0.05, 0.001])
def test_int8_decode_equals_float_decode_of_dequantized_outputs(model: edgeseg.Model, conf: float) -> None:
    spec = model.spec
    det_info, proto_info = spec.outputs[spec.layout.detections_output], spec.outputs[spec.layout.prototypes_output]
    for path in sorted(IMAGES.glob("*.jpg"))[:6]:
        outputs, lb = _raw_outputs(model, path)
        det_q, protos_q = outputs[spec.layout.detections_output][0], outputs[spec.layout.prototypes_output][0]
        det_f = (det_q.astype(np.float32) - det_info.zero_point) * np.float32(det_info.scale)
        protos_f = (protos_q.astype(np.float32) - proto_info.zero_point) * np.float32(proto_info.scale)
        scale = (float(lb.dst_w), float(lb.dst_h))
        q = _core.decode_yolo(
            det_q, 80, conf, 0.7, 300, 30000, False, quant=(det_info.scale, det_info.zero_point), box_scale=scale
        )
        f = _core.decode_yolo(det_f, 80, conf, 0.7, 300, 30000, False, box_scale=scale)
        step = det_info.scale
        assert len(q[1]) == len(f[1])
        np.testing.assert_array_equal(q[2], f[2])
        np.testing.assert_allclose(q[1], f[1], atol=step)
        np.testing.assert_allclose(q[0], f[0], atol=step * 640)
        np.testing.assert_allclose(q[3], f[3], atol=step)
        boxes = _core.unletterbox_boxes(q[0], lb)
        image_hw = (lb.src_h, lb.src_w)
        mq = _core.assemble_masks(
            protos_q.transpose(2, 0, 1), q[3], boxes, (lb.dst_h, lb.dst_w), image_hw,
            quant=(proto_info.scale, proto_info.zero_point),
        )  # fmt: skip
        mf = _core.assemble_masks(protos_f.transpose(2, 0, 1), q[3], boxes, (lb.dst_h, lb.dst_w), image_hw)
        np.testing.assert_array_equal(mq[0], mf[0])
        np.testing.assert_array_equal(mq[1], mf[1])
        differ = np.count_nonzero(mq[3] != mf[3])
        assert differ <= max(1, mq[3].size // 10000), f"{differ} of {mq[3].size} mask pixels differ"


def test_input_quantization_table_matches_the_reference_formula() -> None:
    table = quantize_table(0.003921568859368563, -128, np.dtype(np.int8))
    pixels = np.arange(256, dtype=np.float32)
    reference = np.clip(pixels / np.float32(255) / np.float32(0.003921568859368563) - 128, -128, 127)
    np.testing.assert_array_equal(table, reference.astype(np.int8))
    # Truncation, as the reference does: 255 / 255 / scale is a hair under 255, so white is 126.
    assert table[0] == -128 and table[255] == 126


def test_float_io_tflite_has_float_tensors() -> None:
    require_shared()
    spec = edgeseg.load(MODELS / "yolov8n-seg-int8-floatio.tflite").spec
    assert spec.input.dtype == np.float32 and spec.input.scale is None and spec.layout.boxes_normalized


def test_missing_delegate_is_a_clear_error(tmp_path: Path) -> None:
    require_shared()
    with pytest.raises(edgeseg.ModelError, match="delegate"):
        edgeseg.load(INT8, delegates=[str(tmp_path / "libnot_there.so")])


def test_truncated_tflite_is_a_clear_error(tmp_path: Path) -> None:
    require_shared()
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(INT8.read_bytes()[:20000])
    with pytest.raises(edgeseg.ModelError, match=r"cut\.tflite"):
        edgeseg.load(bad)


def test_onnx_options_on_tflite_and_back_are_rejected() -> None:
    require_shared()
    with pytest.raises(ValueError, match="delegates"):
        edgeseg.load(INT8, providers=["cuda"])
    with pytest.raises(ValueError, match="providers"):
        edgeseg.load(MODELS / "yolov8n-seg.onnx", delegates=["x.so"])


def test_threads_and_no_xnnpack_still_predict(model: edgeseg.Model) -> None:
    image = sorted(IMAGES.glob("*.jpg"))[0]
    plain = edgeseg.load(INT8, threads=1, xnnpack=False)
    assert "XNNPACK" not in plain.runtime.providers
    # The builtin int8 kernels round differently from XNNPACK's: similar, not identical, results.
    a, b = model(image), plain(image)
    assert len(b) > 0 and abs(len(a) - len(b)) <= max(3, len(a) // 4)
    assert set(b.labels) & set(a.labels)
