"""Fuzz findings not fixed yet: the harnesses step around them and their regression tests are strict xfails.

Kept apart from fuzzlib (which needs atheris) so that tests/test_fuzz_regressions.py can read it in a test
environment without atheris. Each finding has a reproducer and a regression test in
tests/test_fuzz_regressions.py; once it is fixed, delete its entry here (the test then guards the fix).
``EDGESEG_FUZZ_KNOWN=check`` makes the harnesses exercise open findings anyway. Fixed since they were
found: F1-F3 and F5-F15 (and F4's sizes beyond int32).
"""

from __future__ import annotations

OPEN_FINDINGS: dict[str, str] = {
    "F4": "assemble_masks: the axis plans span the whole image (20 bytes a row and column) whatever the boxes: "
    "a 4-pixel mask in a 1 x 2**28 image takes 5 GB, 1 x (2**31 - 1) raises MemoryError(std::bad_alloc)",
}
