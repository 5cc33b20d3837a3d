"""Training samples from the synthetic parts generator, letterboxed exactly as the SDK letterboxes at inference."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..preprocess import fit
from ..spec import ULTRALYTICS_PREPROCESS, Preprocess
from ..synthparts import Scene, SceneConfig, render_scene, scene_seed
from .net import PROTO_STRIDE


@dataclass
class Sample:
    """One letterboxed training image and its instances."""

    image: np.ndarray  # (3, H, W) uint8 RGB
    boxes: np.ndarray  # (M, 4) float32 xyxy in input pixels
    classes: np.ndarray  # (M,) int64
    masks: np.ndarray  # (M, H / 4, W / 4) uint8: each instance's share of the prototype pixel, 0..255


def prepare(scene: Scene, input_hw: tuple[int, int], pre: Preprocess = ULTRALYTICS_PREPROCESS) -> Sample:
    """Fit a scene into the network's input as ``pre`` says (default: the Ultralytics letterbox) and its
    instances into prototype-resolution targets. With ``pre.pad_value`` None (padding 0 after
    normalization) the padding holds the mean pixel, which normalizes to ~0."""
    canvas, lb = fit(scene.image, input_hw, pre)
    if pre.pad_value is None:
        mean = np.rint(pre.mean[::-1] if pre.rgb else pre.mean).astype(np.uint8)  # canvas is BGR
        canvas[lb.pad_top + lb.new_h :] = mean
        canvas[:, lb.pad_left + lb.new_w :] = mean
        canvas[: lb.pad_top] = mean
        canvas[:, : lb.pad_left] = mean
    sx, sy = lb.new_w / scene.image.shape[1], lb.new_h / scene.image.shape[0]
    boxes = scene.boxes.astype(np.float32) * np.float32([sx, sy, sx, sy])
    boxes += np.float32([lb.pad_left, lb.pad_top, lb.pad_left, lb.pad_top])
    n = len(scene)
    masks = np.zeros((n, input_hw[0] // PROTO_STRIDE, input_hw[1] // PROTO_STRIDE), dtype=np.uint8)
    if n:
        # Area-averaging keeps each boundary pixel's coverage: sub-pixel targets for the mask loss.
        onehot = (scene.instance_map[..., None] == np.arange(1, n + 1, dtype=scene.instance_map.dtype)).astype(
            np.float32
        )
        full = np.zeros((*input_hw, n), dtype=np.float32)
        inner = full[lb.pad_top : lb.pad_top + lb.new_h, lb.pad_left : lb.pad_left + lb.new_w]
        for c in range(0, n, 4):  # OpenCV's area resize takes at most 4 channels at a time
            chunk = cv2.resize(onehot[..., c : c + 4], (lb.new_w, lb.new_h), interpolation=cv2.INTER_AREA)
            inner[..., c : c + 4] = chunk.reshape(lb.new_h, lb.new_w, -1)
        hp, wp = masks.shape[1:]
        pooled = full.reshape(hp, PROTO_STRIDE, wp, PROTO_STRIDE, n).mean((1, 3))
        masks[:] = np.rint(pooled.transpose(2, 0, 1) * 255).astype(np.uint8)
    image = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1))
    return Sample(image, boxes, scene.classes.astype(np.int64), masks)


def _make(args: tuple[int, int, tuple[int, int], SceneConfig, Preprocess]) -> Sample:
    seed, index, input_hw, config, pre = args
    return prepare(render_scene(scene_seed(seed, index), config), input_hw, pre)


def build_split(
    count: int,
    seed: int,
    input_hw: tuple[int, int],
    config: SceneConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    pre: Preprocess = ULTRALYTICS_PREPROCESS,
) -> list[Sample]:
    """Render and prepare ``count`` scenes; scene ``i`` is ``scene_seed(seed, i)``, as in ``write_dataset``."""
    config = config or SceneConfig()
    jobs = [(seed, i, input_hw, config, pre) for i in range(count)]
    bar = dict(total=count, desc="rendering scenes", unit="img", disable=not progress, leave=False)
    if workers <= 1:
        return [_make(j) for j in tqdm(jobs, **bar)]
    with ProcessPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(_make, jobs, chunksize=32), **bar))


def collate(samples: list[Sample], rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
    """Stack samples into padded tensors; with ``rng``, flip each image left-right and/or up-down
    (a top-down camera sees parts in any orientation, so flips are free extra data)."""
    m = max(1, max(len(s.classes) for s in samples))
    b = len(samples)
    _, h, w = samples[0].image.shape
    hp, wp = samples[0].masks.shape[1:]
    images = np.empty((b, 3, h, w), dtype=np.uint8)
    boxes = np.zeros((b, m, 4), dtype=np.float32)
    classes = np.full((b, m), -1, dtype=np.int64)
    masks = np.zeros((b, m, hp, wp), dtype=np.uint8)
    for i, s in enumerate(samples):
        k = len(s.classes)
        img, bx, mk = s.image, s.boxes.copy(), s.masks
        if rng is not None and rng.random() < 0.5:
            img, mk = img[:, :, ::-1], mk[:, :, ::-1]
            bx[:, [0, 2]] = w - bx[:, [2, 0]]
        if rng is not None and rng.random() < 0.5:
            img, mk = img[:, ::-1], mk[:, ::-1]
            bx[:, [1, 3]] = h - bx[:, [3, 1]]
        images[i] = img
        boxes[i, :k], classes[i, :k], masks[i, :k] = bx, s.classes, mk
    return {
        "images": torch.from_numpy(images).float().div_(255.0),
        "boxes": torch.from_numpy(boxes),
        "classes": torch.from_numpy(classes),
        "valid": torch.from_numpy(classes >= 0),
        "masks": torch.from_numpy(masks).float().div_(255.0),
    }


def save_samples(path: Path, samples: list[Sample], key: str) -> None:
    """Keep a rendered split next to the checkpoint (``key`` says what it was rendered with), so a resumed
    or repeated run does not render it again."""
    counts = np.array([len(s.classes) for s in samples], dtype=np.int64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        key=np.array(key),
        images=np.stack([s.image for s in samples]),
        boxes=np.concatenate([s.boxes.reshape(-1, 4) for s in samples]),
        classes=np.concatenate([s.classes for s in samples]),
        masks=np.concatenate([s.masks for s in samples]),
        counts=counts,
    )
    os.replace(tmp, path)


def load_samples(path: Path, key: str) -> list[Sample] | None:
    """The split ``save_samples`` kept, or None when there is none or it was rendered with other settings."""
    if not path.exists():
        return None
    with np.load(path) as data:
        if str(data["key"]) != key:
            return None
        images, boxes, classes, masks = data["images"], data["boxes"], data["classes"], data["masks"]
        ends = np.cumsum(data["counts"])
    starts = ends - np.diff(ends, prepend=0)
    return [Sample(images[i], boxes[a:b], classes[a:b], masks[a:b]) for i, (a, b) in enumerate(zip(starts, ends))]
