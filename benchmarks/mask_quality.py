"""Where a model's masks lose IoU on held-out synthetic scenes: stray pixels or boundaries.

For every true part of the first N held-out scenes (generator seed 1000003, as the model cards), the predicted
mask (conf 0.3) with the highest IoU; over the matched ones (IoU >= 0.5): the mean IoU as predicted, with only the
mask's largest connected component kept (what stray blobs cost), and cropped to the true box (what spill outside
the part's box costs).

    python benchmarks/mask_quality.py models/partseg-solov2.onnx models/partseg.onnx --scenes 30
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

import edgeseg
from edgeseg.synthparts.scene import render_scene

VAL_SEED = 1_000_003


def largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return labels == 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax()) if n > 1 else mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def measure(path: str, scenes: int) -> dict[str, float]:
    model = edgeseg.load(path)
    parts, found, as_is, component, cropped = 0, 0, [], [], []
    for i in range(scenes):
        scene = render_scene(np.random.SeedSequence([VAL_SEED, i]))
        result = model(scene.image, conf=0.3)
        masks = result.masks.dense() if len(result) else np.zeros((0, *scene.image.shape[:2]), bool)
        for k in range(len(scene)):
            truth = scene.instance_map == k + 1
            parts += 1
            if not len(masks):
                continue
            ious = (masks & truth).sum((1, 2)) / np.maximum((masks | truth).sum((1, 2)), 1)
            best = masks[int(ious.argmax())]
            if ious.max() < 0.5:
                continue
            found += 1
            as_is.append(float(ious.max()))
            component.append(iou(largest_component(best), truth))
            ys, xs = np.nonzero(truth)
            box = np.zeros_like(best)
            box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
            cropped.append(iou(best & box, truth))
    return {
        "parts": parts,
        "matched": found,
        "mask_iou": float(np.mean(as_is)),
        "largest_component_iou": float(np.mean(component)),
        "cropped_to_true_box_iou": float(np.mean(cropped)),
        "share_iou_0.9": float(np.mean(np.array(as_is) >= 0.9)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--scenes", type=int, default=30)
    args = parser.parse_args()
    print("| model | parts matched | mask IoU | largest component | cropped to true box | IoU >= 0.9 |")
    print("|---|---|---|---|---|---|")
    for path in args.models:
        m = measure(path, args.scenes)
        print(f"| {path} | {m['matched']}/{m['parts']} | {m['mask_iou']:.3f} | {m['largest_component_iou']:.3f} "
              f"| {m['cropped_to_true_box_iou']:.3f} | {m['share_iou_0.9']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
