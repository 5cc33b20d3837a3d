"""Defects found by a hostile review (issue 12): each test failed on the code before its fix.

Commands that used to crash the interpreter (a segfault in cv2.imwrite on a non-UTF-8 file name)
run in a subprocess, so a regression fails the test instead of killing the test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg.cli import main
from edgeseg.errors import ImageError, ModelError
from edgeseg.io import decode_image, read_image, write_image

from conftest import IMAGES, MODELS, ROOT, require_shared

BUNDLED = ROOT / "models" / "partseg.onnx"


def _images(n: int) -> list[Path]:
    require_shared()
    return sorted(IMAGES.glob("*.jpg"))[:n]


def _edgeseg(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable.encode(), b"-m", b"edgeseg.cli", *(os.fsencode(a) for a in args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=300)


# ------------------------------------------------------------------ 1. non-UTF-8 file names


def test_non_utf8_names_are_read_and_written(tmp_path: Path) -> None:
    image = _images(1)[0]
    src = os.path.join(os.fsencode(tmp_path), b"in\xff")
    os.mkdir(src)
    with open(os.path.join(src, b"bad\xff.jpg"), "wb") as f:
        f.write(image.read_bytes())
    run = _edgeseg("predict", src, "--model", str(BUNDLED), "--out", b"out\xfe", "--save-json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    out = os.path.join(os.fsencode(tmp_path), b"out\xfe")
    assert sorted(os.listdir(out)) == [b"bad\xff.jpg", b"predictions.json"]
    assert read_image(os.path.join(out, b"bad\xff.jpg")).shape == read_image(image).shape
    run = _edgeseg("demo", "--seed", "3", "--out", b"demo\xff.png", cwd=tmp_path)
    assert run.returncode == 0 and os.path.isfile(os.path.join(os.fsencode(tmp_path), b"demo\xff.png"))
    run = _edgeseg("synth", b"synth\xff", "--count", "1", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert os.listdir(os.path.join(os.fsencode(tmp_path), b"synth\xff", b"images")) == [b"000000.png"]


def test_write_image_is_atomic_and_explains_failures(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    path = write_image(tmp_path / "a.png", image)
    assert read_image(path).shape == (8, 8, 3) and sorted(os.listdir(tmp_path)) == ["a.png"]  # no temporary left
    with pytest.raises(ImageError, match="suffix"):
        write_image(tmp_path / "a.txt", image)
    with pytest.raises(ImageError, match="cannot write"):
        write_image(tmp_path / "missing" / "a.png", image)


# ------------------------------------------------------------------ 5. never write over the input


def test_predict_refuses_to_write_over_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for p in _images(2):
        (src / p.name).write_bytes(p.read_bytes())
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    assert main(["predict", str(src), "--model", str(BUNDLED), "--out", str(src), "-q"]) == 2
    assert "one of the input images" in capsys.readouterr().err
    one = sorted(src.iterdir())[0]
    assert main(["predict", str(one), "--model", str(BUNDLED), "--out", str(src), "-q"]) == 2
    os.chdir(src)  # the same folder through another spelling
    assert main(["predict", ".", "--model", str(BUNDLED), "--out", ".", "-q"]) == 2
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    # A folder inside the source cannot clash (predict does not recurse): allowed.
    assert main(["predict", str(src), "--model", str(BUNDLED), "--out", str(src / "out"), "-q"]) == 0
    assert {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()} == before


def test_predict_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.txt"
    target.write_text("mine")
    assert main(["predict", str(_images(1)[0]), "--model", str(BUNDLED), "--out", str(target), "-q"]) == 2
    assert "existing file" in capsys.readouterr().err and target.read_text() == "mine"


# ------------------------------------------------------------------ 6. one bad file never costs the batch


def _batch_with_bad_files(tmp_path: Path) -> Path:
    src = tmp_path / "batch"
    src.mkdir()
    images = _images(3)
    for p in images:
        (src / p.name).write_bytes(p.read_bytes())
    data = images[0].read_bytes()
    (src / "000000000001.jpg").write_bytes(data[: len(data) // 3])  # cut mid-scan: sorts first
    (src / "zz-notes.jpg").write_text("not an image")
    return src


def test_predict_skips_and_reports_bad_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _batch_with_bad_files(tmp_path)
    out = tmp_path / "out"
    assert main(["predict", str(src), "--model", str(BUNDLED), "--out", str(out), "--save-json", "-q"]) == 1
    err = capsys.readouterr().err
    assert "2 of 5 image(s) could not be read" in err
    assert "000000000001.jpg" in err and "zz-notes.jpg" in err
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(p.name for p in _images(3))
    assert (out / "predictions.json").is_file()


def test_predict_strict_stops_at_the_first_bad_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _batch_with_bad_files(tmp_path)
    out = tmp_path / "out"
    assert main(["predict", str(src), "--model", str(BUNDLED), "--out", str(out), "--strict", "-q"]) == 2
    assert "000000000001.jpg" in capsys.readouterr().err
    assert not list(out.glob("*.jpg"))


def test_truncated_images_are_refused_not_decoded_partially() -> None:
    # OpenCV 4.x decodes a JPEG cut mid-scan into a grey-filled image with only a libjpeg line on stderr.
    for path in _images(5):
        data = path.read_bytes()
        assert decode_image(data).shape[2] == 3
        assert decode_image(data + b"\x00" * 5000 + data[:2000]).shape[2] == 3  # trailing bytes are fine
        for cut in (len(data) // 10, len(data) // 2, len(data) - 2):
            with pytest.raises(ImageError, match="end-of-image"):
                decode_image(data[:cut], path.name)
    import cv2

    _, png = cv2.imencode(".png", read_image(_images(1)[0]))
    with pytest.raises(ImageError, match="IEND"):
        decode_image(png[: png.size - 20].tobytes())


# ------------------------------------------------------------------ 10. smaller


@pytest.fixture(scope="module")
def model() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(MODELS / "yolov8n-seg.onnx")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_det": 2**63}, "max_det must be in"),
        ({"max_det": 2**31}, "max_det must be in"),
        ({"pre_nms_topk": 2**64}, "pre_nms_topk must be in"),
        ({"max_det": 1.5}, "max_det must be an int"),
        ({"max_det": True}, "max_det must be an int"),
        ({"pre_nms_topk": 10.0}, "pre_nms_topk must be an int"),
        ({"conf": True}, "conf must be a number"),
        ({"iou": "0.5"}, "iou must be a number"),
        ({"classes": [True]}, "class True"),
        ({"classes": 1.5}, "classes must be"),
    ],
)
def test_settings_are_checked_strictly_before_inference(model: edgeseg.Model, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model(np.zeros((64, 64, 3), np.uint8), **kwargs)


def _with_metadata(tmp_path: Path, source: Path, **meta: str) -> Path:
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(source))
    props = {p.key: p.value for p in m.metadata_props}
    props.update(meta)
    del m.metadata_props[:]
    for key, value in props.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / f"meta-{len(os.listdir(tmp_path))}.onnx"
    onnx.save(m, str(path))
    return path


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"stride": "'abc'"}, "metadata stride=\"'abc'\""),
        ({"stride": "abc"}, "metadata stride='abc'"),
        ({"stride": "[32]"}, r"metadata stride='\[32\]'"),
        ({"stride": "0"}, "metadata stride='0'"),
        ({"imgsz": "[40000, 40000]"}, r"metadata imgsz='\[40000, 40000\]'"),
        ({"imgsz": "[640]"}, "is not a size"),
        ({"imgsz": "'big'"}, "is not a size"),
    ],
)
def test_bad_metadata_names_the_file_and_the_key(tmp_path: Path, meta: dict, message: str) -> None:
    require_shared()
    path = _with_metadata(tmp_path, MODELS / "yolov8n-seg-dynamic.onnx", **meta)
    with pytest.raises(ModelError, match=message) as info:
        edgeseg.load(path)
    assert path.name in str(info.value)


def test_imgsz_argument_is_bounded() -> None:
    require_shared()
    with pytest.raises(ValueError, match="imgsz must be"):
        edgeseg.load(MODELS / "yolov8n-seg-dynamic.onnx", imgsz=40000 * 32)
    with pytest.raises(ValueError, match="imgsz must be"):
        edgeseg.load(MODELS / "yolov8n-seg-dynamic.onnx", imgsz=(640.5, 640))
