"""Placeholder: the solov2 family declines every model until its decoder lands."""

from __future__ import annotations

from ..spec import Layout, LoadContext, ModelSpec
from .base import Head


class _Family:
    name = "solov2"
    layouts = ""
    options: tuple[str, ...] = ()

    def detect(self, ctx: LoadContext) -> Layout | None:
        """Declines: not implemented yet."""
        return None

    def make_head(self, spec: ModelSpec) -> Head:
        """Never called: detect declines."""
        raise NotImplementedError


FAMILY = _Family()
