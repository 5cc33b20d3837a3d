"""Shared fixtures: the real models, images and reference predictions in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGESEG_SHARED", ROOT.parent / "shared"))
MODELS = SHARED / "models"
IMAGES = SHARED / "data" / "coco-val-mini" / "images"
ANNOTATIONS = SHARED / "data" / "coco-val-mini" / "instances_val2017.json"
REFERENCE = SHARED / "reference" / "ultralytics"


def require_shared() -> None:
    """Skip (with the reason) where ../shared is absent; CI always has it."""
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing in CI")
        pytest.skip(f"shared fixtures not found at {SHARED} (set EDGESEG_SHARED)")


@pytest.fixture(scope="session")
def shared() -> Path:
    require_shared()
    return SHARED
