"""Heads turn one image's raw model outputs into instances; one head per model family."""

from __future__ import annotations

from .base import Head, Instances, PostprocessOptions
from .yolo import YoloE2EHead, YoloHead

__all__ = ["Head", "Instances", "PostprocessOptions", "YoloE2EHead", "YoloHead", "make_head"]


def make_head(spec) -> Head:
    """The head for ``spec.head``."""
    return {"yolo": YoloHead, "yolo_e2e": YoloE2EHead}[spec.head](spec)
