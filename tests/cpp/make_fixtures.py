"""Write the C++ tests' real-model fixtures (tests/cpp/fixtures): raw outputs of fixture models of several families
on a real image and what the numpy transcription of each family's official postprocess makes of them, so ctest
checks the core's one-call postprocess against the references without Python, on x86 and under qemu-aarch64.

    python tests/cpp/make_fixtures.py            # rewrites tests/cpp/fixtures/*

Per case ``<name>.bin``: magic ``ESFX``, uint32 version 2, int32 src_h, src_w, number of outputs; per output int32
kind (0: float, stored as float16; 1: int64), rank and dims (one image: no batch dimension); then each output's
data in order. Float outputs are the model's float32 values rounded to float16 (small files); the references run
on exactly those values widened back to float32. ``<name>.expected``: one line per reference instance, best
first: ``class score x1 y1 x2 y2 rle`` (source pixels; the mask as COCO's compact RLE string of the whole image).
``cases.inc``: per case the C++ that fills its layout and options (``edgeseg info --cpp``) and calls the one-call
postprocess. tests/test_cpp_fixtures.py checks that each committed .expected is the reference's reading of its .bin.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tests"))

import edgeseg  # noqa: E402
import reference_dets  # noqa: E402
import reference_solov2  # noqa: E402
import reference_yolo  # noqa: E402
from edgeseg.cpp import layout_snippet  # noqa: E402

# (classes, scores, boxes, masks) of one image from its float32 outputs (batch dimension kept) and letterbox.
Reference = Callable[[edgeseg.Model, list[np.ndarray], object], tuple[np.ndarray, ...]]


def _yolo(model: edgeseg.Model, outputs: list[np.ndarray], lb: object) -> tuple[np.ndarray, ...]:
    d = model.spec.defaults
    r = reference_yolo.postprocess(outputs[0][0], outputs[1][0], (lb.dst_h, lb.dst_w), (lb.src_h, lb.src_w),
                                   model.spec.num_classes, conf=d.conf, iou=d.iou, max_det=d.max_det)  # fmt: skip
    return r.class_ids, r.scores, r.boxes, r.masks


def _solov2(model: edgeseg.Model, outputs: list[np.ndarray], lb: object) -> tuple[np.ndarray, ...]:
    r = reference_solov2.run_reference(model, outputs, lb)
    return r.labels, r.scores, r.boxes, r.masks


def _dets(model: edgeseg.Model, outputs: list[np.ndarray], lb: object) -> tuple[np.ndarray, ...]:
    o = model.options()
    boxes, scores, labels, masks = reference_dets.postprocess_mmdeploy(
        outputs[0][0], outputs[1][0], outputs[2][0], (lb.src_h, lb.src_w), (lb.new_h, lb.new_w), o.conf, o.max_det,
        o.mask_threshold, roi=True,
    )  # fmt: skip
    return labels, scores, boxes, masks


# (name, model, coco-val-mini image, reference): small fixture models whose outputs fit in ~100-220 kB as float16.
CASES: list[tuple[str, Path, str, Reference]] = [
    ("gelan160_000000000139", FIXTURES / "yolov5" / "gelan-c-seg-160.onnx", "000000000139.jpg", _yolo),
    ("solov2_flat_000000000139", FIXTURES / "solov2" / "solov2_flat.onnx", "000000000139.jpg", _solov2),
    ("mmdeploy_maskrcnn_000000000802", FIXTURES / "dets" / "mmdet-maskrcnn", "000000000802.jpg", _dets),
]


def shared() -> Path:
    return Path(os.environ.get("EDGESEG_SHARED", ROOT.parent / "shared"))


def expected_lines(found: tuple[np.ndarray, ...]) -> str:
    """The .expected text of a reference's (classes, scores, boxes, masks)."""
    from pycocotools import mask as mask_utils

    lines = []
    for cls, score, box, mask in zip(*found):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")
        lines.append(f"{int(cls)} {float(score):.9g} {' '.join(f'{float(v):.9g}' for v in box)} {rle}")
    return "\n".join(lines) + "\n"


def rounded(outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Float outputs rounded to float16 and back (what the .bin holds); integer outputs as they are."""
    return [o.astype(np.float16).astype(np.float32) if o.dtype.kind == "f" else o for o in outputs]


def write_bin(path: Path, src_hw: tuple[int, int], outputs: list[np.ndarray]) -> None:
    """``outputs`` (batch dimension kept) in the .bin format, one image."""
    head = struct.pack("<4sI3i", b"ESFX", 2, src_hw[0], src_hw[1], len(outputs))
    body = b""
    for o in outputs:
        one = o[0]
        kind = 0 if one.dtype.kind == "f" else 1
        head += struct.pack(f"<2i{one.ndim}i", kind, one.ndim, *one.shape)
        body += one.astype(np.float16 if kind == 0 else np.int64).tobytes()
    path.write_bytes(head + body)


def read_bin(path: Path) -> tuple[tuple[int, int], list[np.ndarray]]:
    """(src_h, src_w) and the outputs of a .bin file, with a batch dimension of 1 (floats widened to float32)."""
    data = path.read_bytes()
    magic, version, src_h, src_w, n = struct.unpack_from("<4sI3i", data)
    if magic != b"ESFX" or version != 2:
        raise ValueError(f"{path} is not a version 2 fixture")
    at, shapes = 20, []
    for _ in range(n):
        kind, ndim = struct.unpack_from("<2i", data, at)
        shapes.append((kind, struct.unpack_from(f"<{ndim}i", data, at + 8)))
        at += 8 + 4 * ndim
    outputs = []
    for kind, shape in shapes:
        dtype = np.float16 if kind == 0 else np.int64
        count = int(np.prod(shape))
        a = np.frombuffer(data, dtype, count, at).reshape(shape)
        at += count * np.dtype(dtype).itemsize
        outputs.append((a.astype(np.float32) if kind == 0 else a.copy())[None])
    return (src_h, src_w), outputs


def case_model(model_path: Path) -> edgeseg.Model:
    return edgeseg.load(model_path, names=[str(i) for i in range(80)] if model_path.is_dir() else None)


def reference_of(name: str, model: edgeseg.Model, src_hw: tuple[int, int], outputs: list[np.ndarray]) -> str:
    """The .expected text of case ``name`` for these (rounded) outputs."""
    reference = next(c[3] for c in CASES if c[0] == name)
    _, (lb,) = model.preprocess([np.zeros((*src_hw, 3), np.uint8)])
    return expected_lines(reference(model, outputs, lb))


def cases_inc(snippets: list[tuple[str, str]]) -> str:
    """C++: one function per case running its generated snippet, and the table of cases."""
    parts = ["// Generated by tests/cpp/make_fixtures.py: each case's layout and options as `edgeseg info --cpp`",
             "// writes them, and its one-call postprocess.", "#pragma once", ""]  # fmt: skip
    for name, snippet in snippets:
        body = "\n".join("  " + line for line in snippet.splitlines())
        parts += [f"inline edgeseg::Instances run_{name}(const std::vector<edgeseg::Tensor>& outputs, int64_t image_h,",
                  "                                  int64_t image_w) {", body, "  return found;", "}", ""]  # fmt: skip
    parts.append("struct FixtureCase {")
    parts.append("  const char* name;")
    parts.append("  edgeseg::Instances (*run)(const std::vector<edgeseg::Tensor>&, int64_t, int64_t);")
    parts.append("};")
    parts.append("inline const FixtureCase kFixtureCases[] = {")
    parts += [f'    {{"{name}", run_{name}}},' for name, _ in snippets]
    parts.append("};")
    return "\n".join(parts) + "\n"


def main() -> None:
    out = HERE / "fixtures"
    out.mkdir(exist_ok=True)
    snippets = []
    for name, model_path, image_name, _ in CASES:
        model = case_model(model_path)
        image = cv2.imread(str(shared() / "data" / "coco-val-mini" / "images" / image_name))
        tensor, _ = model.preprocess([image])
        outputs = rounded(model.infer(tensor))
        write_bin(out / f"{name}.bin", image.shape[:2], outputs)
        expected = reference_of(name, model, image.shape[:2], outputs)
        (out / f"{name}.expected").write_text(expected)
        snippets.append((name, layout_snippet(model).replace(str(ROOT) + "/", "")))
        print(f"{name}: {(out / f'{name}.bin').stat().st_size} bytes, {expected.count(chr(10))} reference instances")
    (out / "cases.inc").write_text(cases_inc(snippets))


if __name__ == "__main__":
    main()
