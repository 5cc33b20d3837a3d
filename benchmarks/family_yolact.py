"""YOLACT postprocess: edgeseg's core against the numpy transcription of yolact's own, on the same outputs.

For every image of coco-val-mini and every fixture layout (tests/fixtures/yolact: decoded boxes,
priors as an output, host priors at 550), the model runs once; then edgeseg's postprocess (the call
``model(image)`` makes: Fast NMS, masks box-cropped and bit-packed at image resolution, survivors
only) and the reference (tests/reference_yolact.py: yolact's Detect + output_utils.postprocess in
numpy, full-image float masks) are timed on those outputs, with yolact's defaults (conf 0.05,
IoU 0.5, top_k 200, max 100). Reported: median per-image milliseconds, the speed-up, detections,
and the bytes the masks take in each.

    python benchmarks/family_yolact.py --json benchmarks/results/family_yolact.json
    python benchmarks/family_yolact.py --limit 10 --repeats 3      # quicker
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

import edgeseg

from common import git_state, median_ms, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import reference_yolact as ref  # noqa: E402

SHARED = ROOT.parent / "shared"
FIXTURES = ROOT / "tests" / "fixtures" / "yolact"
LAYOUTS = ("yolact_boxes", "yolact_priors", "yolact_loc")
TARGET = 10.0  # edgeseg at least 10x faster than the reference


def reference(model: edgeseg.Model, outputs: list[np.ndarray], image_hw: tuple[int, int]):
    """The reference postprocess of one image's outputs (priors: the output's, or yolact's make_priors)."""
    lay, d = model.spec.layout, model.spec.defaults
    if lay.boxes_decoded:
        priors = None
    elif lay.priors_output is not None:
        priors = outputs[lay.priors_output].reshape(-1, 4)
    else:
        side = model.spec.imgsz[0]
        priors = reference.priors.get(side)
        if priors is None:
            priors = reference.priors[side] = ref.make_priors_loop(side, [[s] for s in (24, 48, 96, 192, 384)], True)
    det = ref.detect(
        outputs[lay.boxes_output][0],
        outputs[lay.conf_output][0],
        outputs[lay.mask_output][0],
        priors,
        conf_thresh=d.conf,
        iou=d.iou,
        max_det=d.max_det,
    )
    return ref.postprocess(*det, outputs[lay.proto_output][0], *image_hw)


reference.priors = {}  # the reference's priors, made once per input side (as yolact caches them)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco-val-mini" / "images")
    parser.add_argument("--limit", type=int, default=0, help="use the first N images (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per image (median; default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    paths = sorted(args.images.glob("*.jpg"))[: args.limit or None]
    rows = []
    for name in LAYOUTS:
        model = edgeseg.load(FIXTURES / f"{name}.onnx")
        options = model.options()
        ours_ms, ref_ms, dets, ours_bytes, ref_bytes = [], [], [], [], []
        for path in paths:
            image = cv2.imread(str(path))
            tensor, boxes = model.preprocess([image])
            outputs = model.infer(tensor)
            result = model.postprocess(outputs, boxes, options)[0]
            masks = reference(model, outputs, image.shape[:2])[3]
            dets.append(len(result.boxes))
            ours_bytes.append(result.masks.nbytes)
            ref_bytes.append(masks.size * 4)  # the reference's float masks before thresholding
            ours_ms.append(
                median_ms(lambda o=outputs, b=boxes, m=model, op=options: m.postprocess(o, b, op), args.repeats, True)
            )
            ref_ms.append(
                median_ms(lambda o=outputs, s=image.shape[:2], m=model: reference(m, o, s), args.repeats, True)
            )
        per_image = [r / o for r, o in zip(ref_ms, ours_ms)]
        row = {
            "layout": name,
            "input": list(model.spec.imgsz),
            "images": len(paths),
            "detections_median": statistics.median(dets),
            "edgeseg_ms_median": round(statistics.median(ours_ms), 3),
            "reference_ms_median": round(statistics.median(ref_ms), 3),
            "speedup_median": round(statistics.median(per_image), 1),
            "speedup_min": round(min(per_image), 1),
            "edgeseg_mask_bytes_median": int(statistics.median(ours_bytes)),
            "reference_mask_bytes_median": int(statistics.median(ref_bytes)),
            "target_speedup": TARGET,
            "met": statistics.median(per_image) >= TARGET,
        }
        rows.append(row)
        print(
            f"{name:14s} {row['images']} images, {row['detections_median']:g} detections: edgeseg "
            f"{row['edgeseg_ms_median']:.2f} ms, reference {row['reference_ms_median']:.1f} ms, "
            f"x{row['speedup_median']} (min x{row['speedup_min']}); "
            f"masks {row['edgeseg_mask_bytes_median'] / 1e3:.0f} kB "
            f"vs {row['reference_mask_bytes_median'] / 1e6:.1f} MB"
        )
    write_json(
        args.json,
        {
            "benchmark": "family_yolact",
            "command": "python benchmarks/family_yolact.py " + " ".join(sys.argv[1:]),
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "python": platform.python_version(),
            },
            "versions": versions(("edgeseg", "numpy", "onnxruntime")),
            "git": git_state(ROOT),
            "results": rows,
        },
    )
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
