"""Synthetic conveyor-belt images of factory parts with exact instance masks, in COCO format.

A deterministic generator for training and demonstrating small instance-segmentation models without a labelled
dataset: top-down camera views of washers, hex nuts, bolts and brackets (plus two defect classes) on a rubber
belt, with shading, shadows, uneven light, blur, noise and mild perspective; and conveyor-belt video sequences
with persistent part ids, MOTChallenge / COCO ground truth and true line-crossing counts (``render_belt``,
``write_belt_video``).

>>> from edgeseg.synthparts import render_scene, SceneConfig, CLASSES
>>> scene = render_scene(0)
>>> scene.image.shape, scene.image.dtype.name, scene.instance_map.dtype.name
((384, 512, 3), 'uint8', 'uint16')
>>> len(scene) == len(scene.boxes) == len(scene.masks())
True
>>> write_dataset("synth/train", 1000, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from .belt import (
    BeltConfig,
    BeltFrame,
    BeltVideo,
    counting_line,
    render_belt,
    true_counts,
    write_belt_video,
)
from .dataset import scene_seed, write_dataset
from .parts import CLASSES, PartGeometry, make_part
from .scene import Scene, SceneConfig, render_scene

__all__ = [
    "CLASSES",
    "BeltConfig",
    "BeltFrame",
    "BeltVideo",
    "PartGeometry",
    "Scene",
    "SceneConfig",
    "counting_line",
    "make_part",
    "render_belt",
    "render_scene",
    "scene_seed",
    "true_counts",
    "write_belt_video",
    "write_dataset",
]
