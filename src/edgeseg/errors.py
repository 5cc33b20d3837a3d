"""Exceptions raised by edgeseg. All are ``ValueError`` subclasses, so ``except ValueError`` catches them."""

from __future__ import annotations


class ModelError(ValueError):
    """The model file is missing, corrupt, or has a layout edgeseg does not support."""


class ImageError(ValueError):
    """An input image is missing, unreadable, or has an unsupported shape or dtype."""


class DatasetError(ValueError):
    """An annotations file (COCO instances JSON) is not valid JSON or breaks the COCO format."""


class SourceError(ValueError):
    """A video source (file, camera, URL, pipeline, folder, iterable) cannot be opened or read."""
