"""The C++ tests' real-model fixtures (tests/cpp/fixtures, read by ctest's edgeseg_fixture_tests) stay true: each
committed ``.expected`` is what the family's numpy reference makes of its ``.bin`` today, and the Python API on the
same outputs finds those instances, as the C++ core must."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

FIXTURES = Path(__file__).parent / "cpp" / "fixtures"
sys.path.insert(0, str(Path(__file__).parent / "cpp"))

import make_fixtures  # noqa: E402

CASES = {c[0]: c[1] for c in make_fixtures.CASES}


def _parse(text: str) -> list[tuple]:
    rows = []
    for line in text.splitlines():
        cls, score, x1, y1, x2, y2, rle = line.split()
        rows.append((int(cls), float(score), np.array([x1, y1, x2, y2], np.float64), rle))
    return rows


@pytest.mark.parametrize("name", sorted(CASES))
def test_expected_is_the_reference_reading_of_the_outputs(name: str) -> None:
    src_hw, outputs = make_fixtures.read_bin(FIXTURES / f"{name}.bin")
    model = make_fixtures.case_model(CASES[name])
    committed = _parse((FIXTURES / f"{name}.expected").read_text())
    now = _parse(make_fixtures.reference_of(name, model, src_hw, outputs))
    assert len(committed) == len(now) > 0
    size = list(src_hw)
    for a, b in zip(committed, now):
        assert a[0] == b[0] and abs(a[1] - b[1]) <= 1e-6 and np.abs(a[2] - b[2]).max() <= 1e-3
        iou = mask_utils.iou([{"size": size, "counts": a[3]}], [{"size": size, "counts": b[3]}], [0])[0][0]
        assert iou >= 0.99


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_api_on_the_fixture_agrees(name: str) -> None:
    # What ctest checks in C++, here through the Python head (the same core entry): the reference's instances.
    src_hw, outputs = make_fixtures.read_bin(FIXTURES / f"{name}.bin")
    model = make_fixtures.case_model(CASES[name])
    _, (lb,) = model.preprocess([np.zeros((*src_hw, 3), np.uint8)])
    found = model.head(outputs, 0, lb, model.options())
    expected = _parse((FIXTURES / f"{name}.expected").read_text())
    assert len(found.scores) == len(expected)
    assert sorted(found.class_ids.tolist()) == sorted(e[0] for e in expected)
    np.testing.assert_allclose(np.sort(found.scores), np.sort([e[1] for e in expected]), atol=1e-3)
