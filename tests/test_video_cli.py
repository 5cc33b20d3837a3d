"""The video commands end to end on real files: synth-video, track, predict VIDEO, demo --video, bench --source."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.cli import main
from edgeseg.counting import LineCounter

FRAMES = 45


@pytest.fixture(scope="module")
def belt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("belt") / "belt.mp4"
    assert main(["synth-video", str(out), "--frames", str(FRAMES), "--seed", "7", "--width", "480"]) == 0
    return out


def test_synth_video_writes_the_video_and_its_ground_truth(belt: Path) -> None:
    cap = cv2.VideoCapture(str(belt))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 384)
    gt = np.loadtxt(belt.with_suffix(".gt.txt"), delimiter=",", ndmin=2)
    assert gt[:, 0].min() == 1 and gt[:, 0].max() <= FRAMES and (gt[:, 1] > 0).all()
    counts = json.loads(belt.with_suffix(".counts.json").read_text())
    assert len(counts["line"]) == 4
    # The same seed gives the same video: refusing to overwrite it without --overwrite.
    assert main(["synth-video", str(belt), "--frames", "3"]) == 2


def test_track_writes_annotated_video_mot_json_and_a_stable_summary(
    belt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = json.loads(belt.with_suffix(".counts.json").read_text())["line"]
    out, mot, js = tmp_path / "ann.mp4", tmp_path / "t.txt", tmp_path / "t.json"
    where = ",".join(str(v) for v in line)
    args = ["--out", str(out), "--save-mot", str(mot), "--save-json", str(js), "--json", "--line", where]
    code = main(["track", str(belt), *args])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) >= {"frames", "processed", "dropped", "fps", "latency_ms", "tracks", "counts"}
    assert set(summary["latency_ms"]) == {"p50", "p90", "p99"}
    assert summary["frames"] == summary["processed"] == FRAMES and summary["dropped"] == 0
    assert summary["tracks"] > 0

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    rows = [r.split(",") for r in mot.read_text().splitlines()]
    assert rows and all(len(r) == 10 and r[7:] == ["-1", "-1", "-1"] for r in rows)
    frames = {int(r[0]) for r in rows}
    assert min(frames) >= 1 and max(frames) <= FRAMES
    records = json.loads(js.read_text())
    assert {"frame", "timestamp", "track_id", "bbox", "score", "segmentation"} <= set(records[0])

    # The same run through the Python API gives the same tracks and counts: the CLI adds nothing of its own.
    model = edgeseg.load("partseg")
    counter = LineCounter(line, names=model.names)
    with model.stream(belt, counters={"line": counter}) as stream:
        mot_api = [(r.frame_index + 1, int(t)) for r in stream for t in r.track_ids.tolist() if t > 0]
    assert mot_api == [(int(r[0]), int(r[1])) for r in rows]
    assert summary["counts"]["line"]["counts"] == counter.counts


def test_track_refuses_bad_arguments_before_any_work(belt: Path, tmp_path: Path) -> None:
    assert main(["track", str(belt), "--line", "1,2,3"]) == 2
    assert main(["track", str(belt), "--line", "5,5,5,5"]) == 2
    assert main(["track", str(belt), "--out", str(belt)]) == 2  # never written over the input
    assert main(["track", str(tmp_path / "missing.mp4")]) == 2
    assert main(["track", str(belt), "--out", str(tmp_path / "x.gif")]) == 2
    assert belt.stat().st_size > 0


def test_predict_on_a_video_gives_per_frame_instances(belt: Path, tmp_path: Path) -> None:
    assert main(["predict", str(belt), "--out", str(tmp_path), "--save-json", "-q"]) == 0
    records = json.loads((tmp_path / "predictions.json").read_text())
    model = edgeseg.load("partseg")
    cap = cv2.VideoCapture(str(belt))
    ok, first = cap.read()
    assert ok
    expected = model(first).to_coco(image_id=0)
    got = [{k: r[k] for k in expected[0]} for r in records if r["frame"] == 0]
    assert got == expected
    assert all(r["track_id"] == -1 for r in records)  # predict does not track
    assert (tmp_path / "belt.mp4").is_file()


def test_demo_video_tracks_counts_and_compares_with_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo.mp4"
    assert main(["demo", "--video", "--frames", "40", "--seed", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "found" in text and "true" in text and "total" in text
    assert out.is_file()


def test_bench_source_measures_the_stream(belt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "partseg", "--source", str(belt), "--max-frames", "10", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["processed"] == 10 and summary["stage_ms"]["inference"] > 0


def test_show_without_a_display_is_a_clear_error(belt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "GUI:                           NONE" not in cv2.getBuildInformation():
        pytest.skip("this OpenCV has a GUI backend: --show would open a window")
    assert main(["track", str(belt), "--show", "--max-frames", "1"]) == 2
    assert "--show needs a display" in capsys.readouterr().err


def test_track_counts_a_zone(belt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zone = "0,0,480,0,480,384,0,384"  # the whole frame: every confirmed track enters it
    assert main(["track", str(belt), "--zone", zone, "--max-frames", "20", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    counted = summary["counts"]["zone"]
    assert counted["type"] == "zone" and counted["total"]["entered"] == summary["tracks"] > 0
    assert main(["track", str(belt), "--zone", "1,2,3,4"]) == 2
