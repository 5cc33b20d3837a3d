"""Fixed-size exports at small and non-square input sizes: the prototype layout is read from facts, not guessed.

The exports are made here from the real dynamic-size yolov8n-seg (same weights, input fixed, shapes
re-inferred), so each one must predict exactly what the dynamic model predicts at that size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg.errors import ModelError
from edgeseg.families import build_spec
from edgeseg.io import read_image

from conftest import IMAGES, MODELS, require_shared

onnx = pytest.importorskip("onnx")
from onnx import helper, shape_inference  # noqa: E402

# (height, width): 128x128 gives prototypes [1, 32, 32, 32], which the shape alone cannot place.
SIZES = [(96, 96), (128, 128), (160, 160), (320, 320), (128, 192), (192, 96)]


def _fixed_export(dst: Path, hw: tuple[int, int], protos_nhwc: bool = False, keep_metadata: bool = True) -> Path:
    model = onnx.load(str(MODELS / "yolov8n-seg-dynamic.onnx"))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, *hw)):
        dim.Clear()
        dim.dim_value = value
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    if protos_nhwc:  # a layout no Ultralytics exporter writes for ONNX: NCHW input, NHWC prototypes
        protos = model.graph.output[1]
        model.graph.node.append(helper.make_node("Transpose", [protos.name], ["protos_nhwc"], perm=[0, 2, 3, 1]))
        protos.name = "protos_nhwc"
    if not keep_metadata:
        del model.metadata_props[:]
    path = dst / f"yolov8n-seg-{hw[0]}x{hw[1]}{'-nhwc' if protos_nhwc else ''}.onnx"
    onnx.save(shape_inference.infer_shapes(model, data_prop=True), str(path))
    return path


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    require_shared()
    return [read_image(p) for p in sorted(IMAGES.glob("*.jpg"))[:4]]


@pytest.fixture(scope="module")
def dynamic() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(MODELS / "yolov8n-seg-dynamic.onnx", rect=False)


def _same_predictions(fixed: edgeseg.Model, dynamic: edgeseg.Model, images: list[np.ndarray]) -> None:
    h, w = fixed.spec.imgsz
    spec = build_spec(dynamic.spec.path, dynamic.runtime, imgsz=(h, w))
    reference = edgeseg.Model(dynamic.runtime, spec, rect=False)
    for image in images:
        got, want = fixed(image, conf=0.2), reference(image, conf=0.2)
        assert len(got) == len(want)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        np.testing.assert_array_equal(got.class_ids, want.class_ids)
        assert got.masks.rle() == want.masks.rle()


@pytest.mark.parametrize("hw", SIZES, ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_fixed_size_export_predicts_as_the_dynamic_model(
    tmp_path: Path, hw: tuple[int, int], images: list[np.ndarray], dynamic: edgeseg.Model
) -> None:
    fixed = edgeseg.load(_fixed_export(tmp_path, hw))
    p = fixed.spec.outputs[fixed.spec.layout.prototypes_output].shape
    assert tuple(p) == (1, 32, hw[0] // 4, hw[1] // 4)
    assert not fixed.spec.layout.prototypes_nhwc and fixed.spec.layout.num_coeffs == 32 and fixed.spec.imgsz == hw
    _same_predictions(fixed, dynamic, images)


def test_nhwc_prototypes_are_read_from_the_shapes(
    tmp_path: Path, images: list[np.ndarray], dynamic: edgeseg.Model
) -> None:
    fixed = edgeseg.load(_fixed_export(tmp_path, (160, 160), protos_nhwc=True))
    assert fixed.spec.layout.prototypes_nhwc
    _same_predictions(fixed, dynamic, images)


def test_truly_ambiguous_prototypes_are_refused_with_an_override(
    tmp_path: Path, images: list[np.ndarray], dynamic: edgeseg.Model
) -> None:
    # [1, 32, 32, 32] NHWC behind an NCHW input, with no exporter metadata: nothing can tell.
    path = _fixed_export(tmp_path, (128, 128), protos_nhwc=True, keep_metadata=False)
    with pytest.raises(ModelError, match="prototypes_layout") as info:
        edgeseg.load(path)
    assert "fit both" in str(info.value) and "[1, 32, 32, 32]" in str(info.value)
    fixed = edgeseg.load(path, prototypes_layout="NHWC")
    assert fixed.spec.layout.prototypes_nhwc
    _same_predictions(fixed, dynamic, images)
    with pytest.raises(ValueError, match="prototypes_layout must be"):
        edgeseg.load(path, prototypes_layout="CHW")
