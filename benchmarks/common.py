"""Helpers shared by the benchmark scripts (imported from the scripts' own folder)."""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def median_ms(
    fn: Callable[[], object], repeats: int, warmup: bool = False, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median time of ``fn()`` over ``repeats`` calls, in milliseconds (after one untimed call if ``warmup``).

    ``clock``: wall time by default; ``time.thread_time`` (this thread's CPU time) or ``time.process_time``
    measure the work itself on a shared, loaded machine, where preemption inflates wall times at random.
    """
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times) * 1e3


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Fastest wall time of ``fn()`` over ``repeats`` calls, in milliseconds: on a shared, loaded machine the
    median of a millisecond-long call measures the scheduler; the minimum measures the code."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M), in float64."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def git_state(root: Path) -> dict[str, Any]:
    """The checkout's commit and its uncommitted changes under src/ and csrc/ (what edgeseg may have been built
    from); empty outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        status = subprocess.run(["git", "status", "--porcelain", "--", "src", "csrc"], cwd=root, capture_output=True,
                                text=True)  # fmt: skip
    except OSError:
        return {}
    if head.returncode != 0:
        return {}
    return {"commit": head.stdout.strip(), "uncommitted": [line[3:] for line in status.stdout.splitlines()]}


def versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the named distributions (the ones not installed are left out)."""
    from importlib import metadata

    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_json(path: Path | None, result: Any, indent: int = 1) -> None:
    """Write a benchmark's result as JSON to ``path`` (its folder created), and say so; nothing when None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")
    print(f"wrote {path}")
