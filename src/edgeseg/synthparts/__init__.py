"""Synthetic conveyor-belt images of factory parts with exact instance masks, in COCO format.

A deterministic generator for training and demonstrating small instance-segmentation models without a labelled
dataset: top-down camera views of washers, hex nuts, bolts and brackets (plus two defect classes) on a rubber
belt, with shading, shadows, uneven light, blur, noise and mild perspective.

>>> from edgeseg.synthparts import render_scene, SceneConfig, CLASSES
>>> scene = render_scene(0)
>>> scene.image.shape, scene.image.dtype.name, scene.instance_map.dtype.name
((384, 512, 3), 'uint8', 'uint16')
>>> len(scene) == len(scene.boxes) == len(scene.masks())
True
>>> write_dataset("synth/train", 1000, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from .dataset import scene_seed, write_dataset
from .parts import CLASSES, PartGeometry, make_part
from .scene import Scene, SceneConfig, render_scene

__all__ = [
    "CLASSES",
    "PartGeometry",
    "Scene",
    "SceneConfig",
    "make_part",
    "render_scene",
    "scene_seed",
    "write_dataset",
]
