"""The C++ tests' real-model fixtures (tests/cpp/fixtures, read by ctest's edgeseg_fixture_tests) stay true: each
committed ``.expected`` is what the numpy reference makes of its ``.bin`` today, and the Python API on the same
outputs agrees with it as the C++ core must."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from edgeseg import _core
from edgeseg.heads.base import PostprocessOptions

FIXTURES = Path(__file__).parent / "cpp" / "fixtures"
sys.path.insert(0, str(Path(__file__).parent / "cpp"))

import make_fixtures  # noqa: E402


def _parse(text: str) -> list[tuple]:
    rows = []
    for line in text.splitlines():
        cls, score, x1, y1, x2, y2, rle = line.split()
        rows.append((int(cls), float(score), np.array([x1, y1, x2, y2], np.float64), rle))
    return rows


@pytest.mark.parametrize("name", [c[0] for c in make_fixtures.CASES])
def test_expected_is_the_reference_reading_of_the_outputs(name: str) -> None:
    dims, pred, protos = make_fixtures.read_bin(FIXTURES / f"{name}.bin")
    committed = _parse((FIXTURES / f"{name}.expected").read_text())
    now = _parse(make_fixtures.reference_lines(pred, protos, dims))
    assert len(committed) == len(now) > 0
    size = [dims[0], dims[1]]
    for a, b in zip(committed, now):
        assert a[0] == b[0] and abs(a[1] - b[1]) <= 1e-6 and np.abs(a[2] - b[2]).max() <= 1e-3
        iou = mask_utils.iou([{"size": size, "counts": a[3]}], [{"size": size, "counts": b[3]}], [0])[0][0]
        assert iou >= 0.99


@pytest.mark.parametrize("name", [c[0] for c in make_fixtures.CASES])
def test_python_api_on_the_fixture_agrees(name: str) -> None:
    # The same check ctest makes in C++, here through the binding: every reference instance found.
    dims, pred, protos = make_fixtures.read_bin(FIXTURES / f"{name}.bin")
    src_h, src_w, in_h, in_w, nc = dims
    layout = _core.yolo_layout(
        [[1, *pred.shape], [1, *protos.shape]], [1, 3, in_h, in_w], {"names": repr([str(c) for c in range(nc)])}
    )
    lb = _core.make_letterbox(src_h, src_w, in_h, in_w)
    found = _core.postprocess_yolo(layout, [pred, protos], [None, None], lb, PostprocessOptions())
    expected = _parse((FIXTURES / f"{name}.expected").read_text())
    assert len(found.scores) == len(expected)
    np.testing.assert_allclose(np.sort(found.scores), np.sort([e[1] for e in expected]), atol=1e-3)
