"""Heads turn one image's raw model outputs into instances; one head per model family."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Head, Instances, PostprocessOptions
from .yolo import YoloE2EHead, YoloHead

__all__ = ["Head", "Instances", "PostprocessOptions", "YoloE2EHead", "YoloHead", "make_head"]


if TYPE_CHECKING:
    from ..spec import ModelSpec


def make_head(spec: ModelSpec) -> Head:
    """The head for ``spec.head``."""
    return {"yolo": YoloHead, "yolo_e2e": YoloE2EHead}[spec.head](spec)
