"""Write the C++ tests' real-model fixtures (tests/cpp/fixtures): raw outputs of a model on real images and what
the numpy transcription of the Ultralytics postprocess (tests/reference_yolo.py) makes of them, so ctest checks the
core against the reference without Python, on x86 and under qemu-aarch64.

    python tests/cpp/make_fixtures.py            # rewrites tests/cpp/fixtures/*.bin and *.expected

Each case: ``<name>.bin`` = magic ``ESFX``, uint32 version 1, int32 src_h, src_w, input_h, input_w, num_classes,
rows, cols (the head [4 + classes + coefficients, anchors]), channels, proto_h, proto_w, then the head and the
prototypes as float16 (the model's float32 outputs rounded to float16, so the file stays small; the reference runs on
exactly those values widened back to float32). ``<name>.expected`` = one line per reference instance, best first:
``class score x1 y1 x2 y2 rle`` (source pixels; the mask as COCO's compact RLE string of the whole image).
tests/test_cpp_fixtures.py checks that each committed .expected is the reference's reading of its .bin.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import edgeseg  # noqa: E402
import reference_yolo  # noqa: E402

# (fixture name, model, coco-val-mini image): a 160-input gelan-c-seg fixture (80 classes, 525 anchors) whose
# hundreds of candidates exercise NMS and mask assembly; its outputs fit in about 220 kB as float16.
CASES = [("gelan160_000000000139", ROOT / "tests/fixtures/yolov5/gelan-c-seg-160.onnx", "000000000139.jpg")]
SETTINGS = {"conf": 0.25, "iou": 0.7, "max_det": 300}


def shared() -> Path:
    import os

    return Path(os.environ.get("EDGESEG_SHARED", ROOT.parent / "shared"))


def reference_lines(pred: np.ndarray, protos: np.ndarray, dims: tuple[int, ...]) -> str:
    """The .expected text: the reference's instances of float32 outputs (``dims``: src_h, src_w, input_h, input_w,
    num_classes)."""
    from pycocotools import mask as mask_utils

    src_h, src_w, in_h, in_w, nc = dims
    ref = reference_yolo.postprocess(pred, protos, (in_h, in_w), (src_h, src_w), nc, **SETTINGS)
    lines = []
    for box, score, cls, mask in zip(ref.boxes, ref.scores, ref.class_ids, ref.masks):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")
        lines.append(f"{int(cls)} {float(score):.9g} {' '.join(f'{float(v):.9g}' for v in box)} {rle}")
    return "\n".join(lines) + "\n"


def read_bin(path: Path) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """(src_h, src_w, input_h, input_w, num_classes), the head and the prototypes (float32) of a .bin file."""
    data = path.read_bytes()
    magic, version = struct.unpack_from("<4sI", data)
    if magic != b"ESFX" or version != 1:
        raise ValueError(f"{path} is not a fixture")
    h = struct.unpack_from("<10i", data, 8)
    values = np.frombuffer(data, np.float16, offset=48).astype(np.float32)
    rows, cols, c, ph, pw = h[5:]
    return h[:5], values[: rows * cols].reshape(rows, cols), values[rows * cols :].reshape(c, ph, pw)


def case_files(model_path: Path, image_name: str) -> tuple[bytes, str]:
    """The .bin bytes and .expected text of one case."""
    model = edgeseg.load(model_path)
    image = cv2.imread(str(shared() / "data" / "coco-val-mini" / "images" / image_name))
    tensor, (lb,) = model.preprocess([image])
    pred, protos = (o[0] for o in model.infer(tensor))
    pred16, protos16 = pred.astype(np.float16), protos.astype(np.float16)
    dims = (lb.src_h, lb.src_w, lb.dst_h, lb.dst_w, model.spec.num_classes)
    header = struct.pack("<4sI", b"ESFX", 1) + struct.pack("<10i", *dims, *pred.shape, *protos.shape)
    expected = reference_lines(pred16.astype(np.float32), protos16.astype(np.float32), dims)
    return header + pred16.tobytes() + protos16.tobytes(), expected


def main() -> None:
    out = HERE / "fixtures"
    out.mkdir(exist_ok=True)
    for name, model_path, image_name in CASES:
        data, expected = case_files(model_path, image_name)
        (out / f"{name}.bin").write_bytes(data)
        (out / f"{name}.expected").write_text(expected)
        print(f"{name}: {len(data)} bytes, {expected.count(chr(10))} reference instances")


if __name__ == "__main__":
    main()
