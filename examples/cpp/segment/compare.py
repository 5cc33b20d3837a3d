"""Run the C++ example (``segment``) on images and check its instances equal the Python API's.

    python examples/cpp/segment/compare.py BUILD/segment MODEL.onnx IMAGE [IMAGE ...]
    python examples/cpp/segment/compare.py BUILD-aarch64/segment MODEL.onnx IMAGE.ppm ... \\
        --emulator "qemu-aarch64 -L /usr/aarch64-linux-gnu" --tolerant

Exact (the default): the same count, classes, boxes, scores and mask pixels (COCO RLE strings) on every image the
letterbox does not resize (a COCO image, longest side 640, into a 640 input). Images that need a resize are
reported, not failed: the example's plain bilinear resize and OpenCV's fixed-point one differ by a grey level here
and there, which moves low scores a little.

``--tolerant`` (another CPU, e.g. the aarch64 build under an emulator, whose ONNX Runtime kernels round
differently): every instance matched by class and box (box IoU >= 0.99, mask IoU >= 0.98, scores within 0.002);
an unmatched instance is allowed only within 0.01 of the confidence threshold, where rounding decides.

Exit status 1 on any difference. CI (.ci/cpp) runs both on yolov8n-seg.onnx and coco-val-mini images.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

import cv2
import numpy as np
from pycocotools import mask as mask_util

import edgeseg

CONF = 0.25  # the example's default threshold
NEAR_THRESHOLD = 0.01


def run_example(command: list[str], model_path: str, image: str) -> list[dict] | str:
    """The example's instances of ``image``, or why it failed."""
    run = subprocess.run([*command, model_path, image], capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        return f"the example failed ({run.returncode}): {run.stderr.strip()}"
    return [json.loads(line) for line in run.stdout.splitlines()]


def exact_differences(cpp: list[dict], py: edgeseg.Result) -> list[str]:
    """Every way the example's instances differ from the Python API's, bit for bit."""
    if len(cpp) != len(py):
        return [f"{len(cpp)} instances from C++, {len(py)} from Python"]
    problems = []
    rles = py.masks.rle()
    for i, got in enumerate(cpp):
        box = np.array(got["box"], np.float32)
        if got["class_id"] != py.class_ids[i] or not np.array_equal(box, py.boxes[i]):
            cpp_says, py_says = f"class {got['class_id']} box {box}", f"class {py.class_ids[i]} box {py.boxes[i]}"
            problems.append(f"instance {i}: C++ {cpp_says}, Python {py_says}")
        if np.float32(got["score"]) != py.scores[i]:
            problems.append(f"instance {i}: score {got['score']} from C++, {py.scores[i]} from Python")
        if got["rle"] != rles[i]["counts"]:
            problems.append(f"instance {i}: the masks differ")
    return problems


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return float(iw * ih / union) if union > 0 else 0.0


def tolerant_differences(cpp: list[dict], py: edgeseg.Result) -> list[str]:
    """Differences beyond another CPU's rounding (see the module docstring)."""
    size = list(py.image_shape)
    rles = py.masks.rle()
    unmatched = set(range(len(py)))
    problems = []
    for i, got in enumerate(cpp):
        box = np.array(got["box"], np.float32)
        same_class = [j for j in unmatched if py.class_ids[j] == got["class_id"]]
        j = max(same_class, key=lambda k: _box_iou(box, py.boxes[k]), default=None)
        if j is None or _box_iou(box, py.boxes[j]) < 0.99:
            if got["score"] >= CONF + NEAR_THRESHOLD:
                problems.append(f"C++ instance {i} (class {got['class_id']}, score {got['score']:.4f}) has no match")
            continue
        unmatched.discard(j)
        mask_iou = mask_util.iou([{"size": size, "counts": got["rle"]}], [rles[j]], [0])[0][0]
        if mask_iou < 0.98 or abs(got["score"] - float(py.scores[j])) > 0.002:
            problems.append(
                f"C++ instance {i}: mask IoU {mask_iou:.4f}, score {got['score']:.5f} vs {py.scores[j]:.5f}"
            )
    for j in unmatched:
        if py.scores[j] >= CONF + NEAR_THRESHOLD:
            problems.append(f"Python instance {j} (class {py.class_ids[j]}, score {py.scores[j]:.4f}) has no match")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", help="the built example (segment)")
    parser.add_argument("model", help="a YOLO segmentation ONNX model")
    parser.add_argument("images", nargs="+", help="JPEG or PPM images")
    parser.add_argument("--emulator", default="", help="command that runs the binary (e.g. qemu-aarch64 -L ...)")
    parser.add_argument("--tolerant", action="store_true", help="allow another CPU's rounding (see above)")
    args = parser.parse_args()
    model = edgeseg.load(args.model)
    command = [*shlex.split(args.emulator), args.binary]
    checked, failed, resized, total = 0, 0, 0, 0
    for image in args.images:
        frame = cv2.imread(image)
        if frame is None:
            print(f"{image}: not an image")
            return 1
        py = model(frame)
        cpp = run_example(command, args.model, image)
        problems = (
            [cpp] if isinstance(cpp, str) else (tolerant_differences if args.tolerant else exact_differences)(cpp, py)
        )
        _, (lb,) = model.preprocess([frame])
        if not args.tolerant and (lb.new_h, lb.new_w) != frame.shape[:2]:
            resized += 1
            print(f"{image} ({frame.shape[1]}x{frame.shape[0]}, resized): {len(problems)} differences (not failed)")
            continue
        checked += 1
        total += len(py)
        for p in problems:
            print(f"{image}: {p}")
        failed += bool(problems)
    how = "within another CPU's rounding" if args.tolerant else "equal"
    print(
        f"C++ example vs Python API: {checked - failed}/{checked} images {how} ({total} instances); {resized} resized"
    )
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
