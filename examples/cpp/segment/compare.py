"""Run the C++ example (``segment``) on images and check its instances equal the Python API's: the same count,
classes, boxes, scores and mask pixels (COCO RLE strings) on every image the letterbox does not resize (a COCO
image, longest side 640, into a 640 input). Exit status 1 on any difference there. Images that need a resize are
reported, not failed: the example's plain bilinear resize and OpenCV's fixed-point one differ by a grey level here
and there, which moves low scores a little.

    python examples/cpp/segment/compare.py BUILD/segment MODEL.onnx IMAGE [IMAGE ...]

CI (.ci/cpp) runs it on yolov8n-seg.onnx and coco-val-mini images.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import cv2
import numpy as np

import edgeseg


def compare(binary: str, model: edgeseg.Model, model_path: str, image: str) -> list[str]:
    """What differs between the example's instances of ``image`` and the Python API's (empty: none)."""
    run = subprocess.run([binary, model_path, image], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        return [f"the example failed ({run.returncode}): {run.stderr.strip()}"]
    cpp = [json.loads(line) for line in run.stdout.splitlines()]
    py = model(cv2.imread(image))
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", help="the built example (segment)")
    parser.add_argument("model", help="a YOLO segmentation ONNX model")
    parser.add_argument("images", nargs="+", help="JPEG images")
    args = parser.parse_args()
    model = edgeseg.load(args.model)
    exact, failed, resized, total = 0, 0, 0, 0
    for image in args.images:
        h, w = cv2.imread(image).shape[:2]
        _, (lb,) = model.preprocess([np.zeros((h, w, 3), np.uint8)])
        problems = compare(args.binary, model, args.model, image)
        if (lb.new_h, lb.new_w) != (h, w):
            resized += 1
            print(f"{image} ({w}x{h}, resized): {len(problems)} differences (not failed)")
            continue
        exact += 1
        total += len(model(cv2.imread(image)))
        for p in problems:
            print(f"{image}: {p}")
        failed += bool(problems)
    print(f"C++ example vs Python API: {exact - failed}/{exact} images equal ({total} instances); {resized} resized")
    return 1 if failed or exact == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
