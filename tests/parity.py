"""Comparing edgeseg's predictions with the reference pipeline's (COCO results JSON)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils


def load_reference(path: Path) -> dict[int, list[dict]]:
    """Reference detections grouped by image id."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for det in json.loads(path.read_text()):
        by_image[det["image_id"]].append(det)
    return by_image


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


@dataclass
class Comparison:
    """Outcome of comparing all images of one model."""

    count_mismatches: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    score_errors: list[float] = field(default_factory=list)
    box_ious: list[float] = field(default_factory=list)
    mask_ious: list[float] = field(default_factory=list)

    def summary(self) -> str:
        m = np.array(self.mask_ious)
        return (
            f"count mismatches {len(self.count_mismatches)}, unmatched {len(self.unmatched)}, "
            f"min box IoU {min(self.box_ious, default=1):.4f}, max score err {max(self.score_errors, default=0):.2e}, "
            f"mask IoU mean {m.mean() if m.size else 1:.4f}, >=0.9 {np.mean(m >= 0.9) if m.size else 1:.3f}"
        )


def compare_image(ours: list[dict], ref: list[dict], image_id: int, out: Comparison) -> None:
    """Match detections (same class, best box IoU, by descending reference score) and record the errors."""
    if len(ours) != len(ref):
        out.count_mismatches.append(f"image {image_id}: {len(ours)} detections, reference {len(ref)}")
    if not ours or not ref:
        return
    xyxy = lambda d: [d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]  # noqa: E731
    ious = box_iou(np.array([xyxy(d) for d in ref]), np.array([xyxy(d) for d in ours]))
    taken: set[int] = set()
    for i in np.argsort([-d["score"] for d in ref], kind="stable"):
        cands = [j for j in np.argsort(-ious[i]) if j not in taken and ours[j]["category_id"] == ref[i]["category_id"]]
        if not cands or ious[i, cands[0]] < 0.5:
            out.unmatched.append(f"image {image_id}: reference detection {i} ({ref[i]['category_id']}) has no match")
            continue
        j = cands[0]
        taken.add(j)
        out.box_ious.append(float(ious[i, j]))
        out.score_errors.append(abs(ours[j]["score"] - ref[i]["score"]))
        out.mask_ious.append(float(mask_utils.iou([ours[j]["segmentation"]], [ref[i]["segmentation"]], [0])[0, 0]))


def count_loose_matches(ours: list[dict], ref: list[dict], min_iou: float = 0.9) -> int:
    """Reference detections matched one-to-one (by descending reference score) by one of ours with the same
    class and box IoU >= ``min_iou``: a sanity measure that tolerates a few detections near the thresholds."""
    if not ours or not ref:
        return 0
    xyxy = lambda d: [d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]  # noqa: E731
    ious = box_iou(np.array([xyxy(d) for d in ref]), np.array([xyxy(d) for d in ours]))
    taken: set[int] = set()
    for i in np.argsort([-d["score"] for d in ref], kind="stable"):
        cands = [j for j in np.argsort(-ious[i]) if j not in taken and ours[j]["category_id"] == ref[i]["category_id"]]
        if cands and ious[i, cands[0]] >= min_iou:
            taken.add(cands[0])
    return len(taken)
