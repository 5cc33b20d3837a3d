"""Heads turn one image's raw model outputs into instances; one module per model family.

Each family module has a ``FAMILY`` object (see ``Family``) that detects its layouts from a loaded
model and makes the decoder; ``FAMILIES`` is the registry ``edgeseg.load`` consults.
"""

from __future__ import annotations

from ..spec import ModelSpec
from . import dets, rtmdet, solov2, yolact, yolo, yolo_split
from .base import Family, Head, Instances, PostprocessOptions
from .yolo import YoloHead

__all__ = ["FAMILIES", "Family", "Head", "Instances", "PostprocessOptions", "YoloHead", "make_head"]

FAMILIES: dict[str, Family] = {m.FAMILY.name: m.FAMILY for m in (yolo, yolo_split, yolact, dets, rtmdet, solov2)}
"""Every family by name, in the order their detectors are asked."""


def make_head(spec: ModelSpec) -> Head:
    """The decoder for ``spec`` (made by the family that detected it)."""
    return FAMILIES[spec.family].make_head(spec)
