"""Fuzz findings not fixed yet: the harnesses step around them and their regression tests are strict xfails.

Kept apart from fuzzlib (which needs atheris) so that tests/test_fuzz_regressions.py can read it in a test
environment without atheris. Each finding has a reproducer and a regression test in
tests/test_fuzz_regressions.py; once it is fixed, delete its entry here (the test then guards the fix).
``EDGESEG_FUZZ_KNOWN=check`` makes the harnesses exercise open findings anyway. Fixed since they were
found: all of F1-F21 (F18-F21 from fuzz_families: decode_solov2's mask_stride 0 SIGFPE and its
empty result's offsets, dtypes compared by identity so unpickled arrays were refused, and NaN soft probabilities
from logits that overflowed).
"""

from __future__ import annotations

OPEN_FINDINGS: dict[str, str] = {}
