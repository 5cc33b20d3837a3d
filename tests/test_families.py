"""Families as plug-ins: the registry asks every family's detector, exactly one must answer.

These tests use the real YOLO models and the registry itself; the extra families registered here are
real plug-ins (objects with ``detect``/``make_head``), which is the point: adding one touches nothing else.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg.errors import ModelError
from edgeseg.families import build_spec, read_sidecars, supported_layouts
from edgeseg.heads import FAMILIES, yolo
from edgeseg.runtimes import open_runtime
from edgeseg.spec import Defaults, Layout, LoadContext, ModelSpec, Preprocess

from conftest import IMAGES, MODELS, require_shared

YOLO = MODELS / "yolov8n-seg.onnx"


@pytest.fixture(scope="module")
def runtime():
    require_shared()
    return open_runtime(YOLO)


def test_every_family_is_registered_and_names_itself() -> None:
    assert next(iter(FAMILIES)) == "yolo"
    for name, family in FAMILIES.items():
        assert family.name == name
        assert isinstance(family.options, tuple)


def test_yolo_family_reads_the_model(runtime) -> None:
    spec = build_spec(str(YOLO), runtime)
    assert (spec.family, spec.head) == ("yolo", "yolo")
    assert spec.preprocess == Preprocess() and spec.defaults == Defaults()
    assert "family:      yolo" in spec.describe() and "layout:      yolo (Ultralytics export" in spec.describe()


def test_forcing_a_family(runtime) -> None:
    assert build_spec(str(YOLO), runtime, head="yolo").family == "yolo"
    with pytest.raises(ValueError, match="unknown head 'maskformer'; the families are: yolo"):
        build_spec(str(YOLO), runtime, head="maskformer")
    others = [name for name in FAMILIES if name != "yolo"]
    for name in others:
        with pytest.raises(ModelError, match=f"the outputs are not a {name} layout") as info:
            build_spec(str(YOLO), runtime, head=name)
        assert "found outputs: output0 [1, 116, 8400] float32; output1 [1, 32, 160, 160] float32" in str(info.value)


def test_unknown_load_options_are_refused(runtime) -> None:
    with pytest.raises(ValueError, match=r"unknown load option.*colour.*known: .*prototypes_layout"):
        build_spec(str(YOLO), runtime, options={"colour": "red"})


class _AcceptsAll:
    """A family that claims every model: a second plug-in to make the registry choose."""

    name = "greedy"
    layouts = "greedy: anything"
    options: tuple[str, ...] = ()

    def detect(self, ctx: LoadContext) -> Layout:
        return Layout("greedy", "greedy_any", None, 3, "claims everything", preprocess=Preprocess(resize="stretch"))

    def make_head(self, spec: ModelSpec):
        return FAMILIES["yolo"].make_head(spec)


def test_two_families_claiming_a_model_is_an_error_that_names_both(runtime, monkeypatch) -> None:
    monkeypatch.setitem(FAMILIES, "greedy", _AcceptsAll())
    with pytest.raises(ModelError, match=r"fit several families: yolo \(yolo\), greedy \(greedy_any\); pass head="):
        build_spec(str(YOLO), runtime)
    spec = build_spec(str(YOLO), runtime, head="greedy")
    assert (spec.family, spec.head, spec.num_classes, spec.preprocess.resize) == ("greedy", "greedy_any", 3, "stretch")
    assert "greedy: anything" in supported_layouts()


def test_a_model_no_family_reads_lists_every_layout(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["scores"])], "g", [x], [y])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError, match="match no supported model family") as info:
        edgeseg.load(path)
    message = str(info.value)
    assert "found outputs: scores [1, 3, 64, 64] float32" in message
    assert "Supported layouts:" in message and yolo.LAYOUTS.splitlines()[0] in message


def test_a_work_directory_loads_its_model(tmp_path: Path) -> None:
    require_shared()
    shutil.copy(YOLO, tmp_path / "end2end.onnx")
    shutil.copy(MODELS / "yolov8n-seg-e2e.onnx", tmp_path / "other.onnx")
    model = edgeseg.load(tmp_path)  # end2end.onnx is MMDeploy's name: it wins
    assert Path(model.spec.path).name == "end2end.onnx"
    (tmp_path / "end2end.onnx").unlink()
    assert Path(edgeseg.load(tmp_path).spec.path).name == "other.onnx"  # the only model left
    shutil.copy(YOLO, tmp_path / "third.onnx")
    with pytest.raises(ModelError, match=r"exactly one model file .* found other\.onnx, third\.onnx"):
        edgeseg.load(tmp_path)


def test_sidecars_are_read_and_bad_ones_refused(tmp_path: Path) -> None:
    model = tmp_path / "end2end.onnx"
    model.write_bytes(b"")
    assert read_sidecars(model) == {}
    (tmp_path / "pipeline.json").write_text(json.dumps({"pipeline": {"tasks": []}}))
    (tmp_path / "deploy.json").write_text('{"version": "1.3.1"}')
    assert read_sidecars(model) == {"pipeline": {"pipeline": {"tasks": []}}, "deploy": {"version": "1.3.1"}}
    (tmp_path / "detail.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"detail.json: not valid JSON"):
        read_sidecars(model)
    (tmp_path / "detail.json").write_bytes(b"{" + b" " * (1 << 20) + b"}")
    with pytest.raises(ModelError, match="larger than"):
        read_sidecars(model)


def test_family_defaults_drive_the_call(tmp_path: Path) -> None:
    require_shared()
    model = edgeseg.load(YOLO)
    image = sorted(IMAGES.glob("*.jpg"))[0]
    default = model(image)
    explicit = model(image, conf=0.25, iou=0.7, max_det=300, nms="box")
    assert np.array_equal(default.boxes, explicit.boxes) and np.array_equal(default.class_ids, explicit.class_ids)
    assert model.options().conf == 0.25 and model.options(conf=0.5).conf == 0.5
    with pytest.raises(ValueError, match="nms must be one of 'box', 'fast', 'matrix', 'mask', got 'soft'"):
        model(image, nms="soft")
