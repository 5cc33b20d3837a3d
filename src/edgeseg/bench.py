"""Per-stage latency of a model on this device: what ``edgeseg bench`` measures."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .model import Model
from .sample import synthetic_image

STAGES = ("preprocess", "inference", "postprocess", "total")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024


@dataclass
class BenchReport:
    """Latency statistics (ms) per stage and the setup they were measured with (``edgeseg bench --json``)."""

    model: str
    source: str
    images: int
    warmup: int
    runs: int
    conf: float
    preprocess_ms: dict[str, float]
    inference_ms: dict[str, float]
    postprocess_ms: dict[str, float]
    total_ms: dict[str, float]
    fps: float
    peak_rss_mb: float
    runtime: str
    providers: list[str]
    threads: int
    detections_mean: float
    samples: dict[str, list[float]]

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """Plain-JSON form; per-run samples only on request."""
        d = asdict(self)
        if not samples:
            d.pop("samples")
        return d

    def table(self) -> str:
        """A Markdown table of the per-stage statistics."""
        lines = ["| stage | p50 ms | p90 ms | p99 ms | mean ms |", "|---|---|---|---|---|"]
        for stage in STAGES:
            s = getattr(self, f"{stage}_ms")
            lines.append(f"| {stage} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['mean']:.2f} |")
        return "\n".join(lines)


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(v, 50)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "mean": float(v.mean()),
    }


def benchmark(
    model: Model,
    images: Sequence[np.ndarray] | None = None,
    warmup: int = 5,
    runs: int = 50,
    conf: float = 0.25,
    progress: bool = True,
    source: str | None = None,
) -> BenchReport:
    """Time ``runs`` calls of ``model`` (after ``warmup`` untimed ones), cycling through ``images``.

    Images are decoded before timing starts: preprocess is letterbox and tensor packing only.
    Without images, a synthetic scene of the model's input size is used.
    """
    if warmup < 0 or runs < 1:
        raise ValueError("warmup must be >= 0 and runs >= 1")
    if not images:
        h, w = model.spec.imgsz
        images = [synthetic_image(h, w)]
        source = source or f"synthetic {w}x{h} image"
    from tqdm import tqdm

    for i in range(warmup):
        model(images[i % len(images)], conf=conf)
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    detections = []
    for i in tqdm(range(runs), desc="bench", unit="run", disable=not progress):
        t = time.perf_counter()
        result = model(images[i % len(images)], conf=conf)
        samples["total"].append((time.perf_counter() - t) * 1e3)
        for stage in ("preprocess", "inference", "postprocess"):
            samples[stage].append(result.timings[stage])
        detections.append(len(result))
    total = _stats(samples["total"])
    return BenchReport(
        model=str(model.spec.path),
        source=source or f"{len(images)} image(s)",
        images=len(images),
        warmup=warmup,
        runs=runs,
        conf=conf,
        preprocess_ms=_stats(samples["preprocess"]),
        inference_ms=_stats(samples["inference"]),
        postprocess_ms=_stats(samples["postprocess"]),
        total_ms=total,
        fps=1000.0 / total["mean"],
        peak_rss_mb=peak_rss_mb(),
        runtime=model.runtime.name,
        providers=list(model.runtime.providers),
        threads=model.runtime.threads or os.cpu_count() or 1,
        detections_mean=float(np.mean(detections)),
        samples=samples,
    )


def plot(report: BenchReport, path: str | Path) -> None:
    """Write a PNG of the per-stage latency distributions (needs matplotlib: ``pip install edgeseg[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install 'edgeseg[plot]'") from exc
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data = [report.samples[s] for s in STAGES]
    ax.boxplot(data, whis=(1, 99), showfliers=True)
    ax.set_xticks(range(1, len(STAGES) + 1), STAGES)
    ax.set_ylabel("ms per image")
    ax.set_title(
        f"{Path(report.model).name}: {report.fps:.1f} FPS, {report.runtime} "
        f"({', '.join(report.providers)}), {report.threads} threads"
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)
