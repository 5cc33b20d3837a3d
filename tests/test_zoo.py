"""Model zoo: named models, verified resumable downloads, the cache (issue 5, section 2).

Every download comes from a local HTTP server on 127.0.0.1 written here (with Range support, and
modes that drop the connection mid-file or ignore Range); no test touches the internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from edgeseg import zoo
from edgeseg.cli import main
from edgeseg.errors import ModelError
from edgeseg.zoo import ZooEntry, ZooError

from conftest import MODELS, require_shared

SMALL_MODEL = "yolov8n-seg-320-dynint8.onnx"


@dataclass
class Served:
    """What the server serves and how; ``requests`` logs each request's path and Range header."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: int | None = None  # first response only: send this many bytes, then cut the connection
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        served = self.server.served  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        served.requests.append((self.path, range_header))
        body = served.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if range_header and not served.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if served.drop_after is not None:
            cut, served.drop_after = served.drop_after, None
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.served = served  # type: ignore[attr-defined]
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def isolated_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache in tmp_path and a private copy of the registry for every test."""
    home = tmp_path / "edgeseg-home"
    monkeypatch.setenv("EDGESEG_HOME", str(home))
    monkeypatch.setattr(zoo, "REGISTRY", dict(zoo.REGISTRY))
    return home


def _payload(n: int = 300_000) -> bytes:
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(base: str, path: str = "/m.onnx", sha256: str | None = None, name: str = "test-model") -> ZooEntry:
    return ZooEntry(name, "test-model.onnx", "onnx", "Apache-2.0", "a test model", url=base + path, sha256=sha256)


def test_registry_lists_the_ultralytics_models_honestly() -> None:
    names = {e.name for e in zoo.list_models()}
    assert {"yolov8n-seg", "yolov8s-seg", "yolo11n-seg", "yolo11s-seg"} <= names
    for name in ("yolov8n-seg", "yolov8s-seg", "yolo11n-seg", "yolo11s-seg"):
        e = zoo.get(name)
        assert e.format == "onnx" and e.licence == "AGPL-3.0"
        assert e.url is None  # Ultralytics publishes no ONNX files: no pretend download
        assert e.source and e.source.startswith("https://github.com/ultralytics/assets/releases/download/")
        assert e.source.endswith(f"/{name}.pt") and e.export == f"yolo export model={name}.pt format=onnx"


def test_fetch_downloads_verifies_and_reuses_the_cache(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    zoo.register(_entry(base, sha256=_sha(data)))
    path = zoo.fetch("test-model", progress=False)
    assert path == isolated_zoo / "models" / "test-model.onnx" and path.read_bytes() == data
    assert not list(path.parent.glob("*.part"))
    assert zoo.fetch("test-model", progress=False) == path
    assert len(served.requests) == 1  # the second fetch is a cache hit
    assert zoo.describe(zoo.get("test-model"))["cached"] == str(path)


def test_checksum_mismatch_deletes_the_download(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    served.files["/m.onnx"] = _payload()
    zoo.register(_entry(base, sha256="0" * 64))
    with pytest.raises(ZooError, match=r"checksum mismatch.*deleted"):
        zoo.fetch("test-model", progress=False)
    assert not (isolated_zoo / "models" / "test-model.onnx").exists()
    assert not list((isolated_zoo / "models").glob("*"))


def test_interrupted_download_resumes_with_range(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    served.drop_after = 100_000
    zoo.register(_entry(base, sha256=_sha(data)))
    dest = isolated_zoo / "models" / "test-model.onnx"
    with pytest.raises(ZooError, match="again to resume"):
        zoo.fetch("test-model", progress=False, retries=0)
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists()  # atomic: no half file under the final name
    assert 0 < part.stat().st_size <= 100_000 and data.startswith(part.read_bytes())
    kept = part.stat().st_size
    assert zoo.fetch("test-model", progress=False) == dest
    assert dest.read_bytes() == data and not part.exists()
    assert served.requests[-1] == ("/m.onnx", f"bytes={kept}-")


def test_interruption_is_resumed_within_one_fetch(server: tuple[str, Served]) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    served.drop_after = 50_000
    zoo.register(_entry(base, sha256=_sha(data)))
    assert zoo.fetch("test-model", progress=False).read_bytes() == data
    assert len(served.requests) == 2 and served.requests[1][1] is not None


def test_server_ignoring_range_restarts(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    served.ignore_range = True
    zoo.register(_entry(base, sha256=_sha(data)))
    part = isolated_zoo / "models" / "test-model.onnx.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that is no prefix of the file")
    path = zoo.fetch("test-model", progress=False)
    assert path.read_bytes() == data
    assert served.requests[0][1] is not None  # it asked to resume, got a 200 and started over


def test_stale_part_longer_than_the_file_restarts(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _payload(10_000)
    served.files["/m.onnx"] = data
    zoo.register(_entry(base, sha256=_sha(data)))
    part = isolated_zoo / "models" / "test-model.onnx.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 20_000)
    assert zoo.fetch("test-model", progress=False).read_bytes() == data  # 416, then from the start


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_says_how_to_bring_the_file(isolated_zoo: Path) -> None:
    zoo.register(_entry(f"http://127.0.0.1:{_closed_port()}"))
    dest = isolated_zoo / "models" / "test-model.onnx"
    with pytest.raises(ZooError, match="cannot download test-model") as info:
        zoo.fetch("test-model", progress=False)
    assert "offline" in str(info.value) and str(dest) in str(info.value) and "edgeseg.load()" in str(info.value)
    with pytest.raises(ModelError, match="cannot download"):
        edgeseg.load("test-model")  # offline, nothing cached: the same clear error


def test_http_error_is_reported(server: tuple[str, Served]) -> None:
    base, _ = server
    zoo.register(_entry(base, path="/missing.onnx"))
    with pytest.raises(ZooError, match="HTTP 404"):
        zoo.fetch("test-model", progress=False)


def test_export_only_entry_explains_and_works_once_placed(isolated_zoo: Path) -> None:
    """Ultralytics entries have no ONNX download: fetch says how to export and where to put the file."""
    dest = isolated_zoo / "models" / "yolov8n-seg.onnx"
    with pytest.raises(ZooError, match="no official ONNX download") as info:
        zoo.fetch("yolov8n-seg", progress=False)
    assert "yolo export model=yolov8n-seg.pt format=onnx" in str(info.value) and str(dest) in str(info.value)
    with pytest.raises(ZooError, match="yolo export"):
        edgeseg.load("yolov8n-seg")
    require_shared()
    dest.parent.mkdir(parents=True)
    dest.write_bytes((MODELS / SMALL_MODEL).read_bytes())
    model = edgeseg.load("yolov8n-seg")
    assert Path(model.spec.path) == dest
    assert zoo.expected_digest("yolov8n-seg") == (zoo.sha256_file(dest), "recorded")
    with open(dest, "r+b") as f:  # tampered afterwards: refused, and fetch cannot repair it
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ZooError, match="corrupt or modified"):
        edgeseg.load("yolov8n-seg")
    with pytest.raises(ZooError, match="delete it"):
        zoo.fetch("yolov8n-seg", progress=False)


def test_first_download_records_digest_then_catches_tampering(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    zoo.register(_entry(base))  # no pinned digest
    assert "recorded at first download" in zoo.describe(zoo.get("test-model"))["digest"]
    path = zoo.fetch("test-model", progress=False)
    record = json.loads((isolated_zoo / "digests.json").read_text())
    assert record["models/test-model.onnx"]["sha256"] == _sha(data)
    assert zoo.expected_digest("test-model") == (_sha(data), "recorded")
    path.write_bytes(data[:-10] + b"tampered!!")
    with pytest.raises(ZooError, match="corrupt or modified cached file"):
        zoo.verify_cached("test-model")
    with pytest.raises(ModelError, match="edgeseg fetch test-model"):
        edgeseg.load("test-model")
    assert zoo.fetch("test-model", progress=False).read_bytes() == data  # deleted and downloaded again
    assert len(served.requests) == 2
    served.files["/m.onnx"] = data[:-1] + b"?"  # upstream changed: the recorded digest catches it
    path.unlink()
    with pytest.raises(ZooError, match="does not match the recorded"):
        zoo.fetch("test-model", progress=False)
    assert not path.exists()


def test_load_resolves_a_name_through_the_cache(server: tuple[str, Served], isolated_zoo: Path) -> None:
    require_shared()
    base, served = server
    data = (MODELS / SMALL_MODEL).read_bytes()
    served.files["/" + SMALL_MODEL] = data
    zoo.register(_entry(base, path="/" + SMALL_MODEL, sha256=_sha(data)))
    model = edgeseg.load("test-model")
    assert Path(model.spec.path) == isolated_zoo / "models" / "test-model.onnx"
    result = model(np.full((240, 320, 3), 114, np.uint8))
    assert result.image_shape == (240, 320)
    edgeseg.load("test-model")
    assert len(served.requests) == 1  # the second load used the cache
    reference = edgeseg.load(MODELS / SMALL_MODEL)  # paths load exactly as before
    assert reference.spec.names == model.spec.names


def test_load_by_url_and_unknown_names(server: tuple[str, Served], isolated_zoo: Path, tmp_path: Path) -> None:
    require_shared()
    base, served = server
    served.files["/" + SMALL_MODEL] = (MODELS / SMALL_MODEL).read_bytes()
    model = edgeseg.load(f"{base}/{SMALL_MODEL}")
    assert Path(model.spec.path).parent.parent == isolated_zoo / "urls" and model.spec.path.endswith(SMALL_MODEL)
    with pytest.raises(ModelError, match=r"no such model file.*nor a model name: .*yolov8n-seg"):
        edgeseg.load("yolov9-seg")
    with pytest.raises(ModelError, match="no such model file"):
        edgeseg.load(tmp_path / "missing.onnx")


def test_cli_models_and_fetch(server: tuple[str, Served], capsys: pytest.CaptureFixture[str]) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    zoo.register(_entry(base, sha256=_sha(data)))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for word in ("yolov8n-seg", "yolo11s-seg", "AGPL-3.0", "test-model", "pinned", "recorded when first cached"):
        assert word in out
    assert main(["fetch", "test-model", "-q"]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path.read_bytes() == data
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]}
    assert rows["test-model"]["cached"] == str(path) and rows["yolov8n-seg"]["cached"] is None
    assert main(["fetch", f"{base}/m.onnx"]) == 0  # by URL, with the progress bar
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]).read_bytes() == data
    assert main(["fetch", "yolo11n-seg"]) == 2
    assert "yolo export model=yolo11n-seg.pt format=onnx" in capsys.readouterr().err
    assert main(["fetch", "no-such-model"]) == 2
    assert "known names" in capsys.readouterr().err


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGESEG_HOME")
    assert zoo.home() == Path.home() / ".cache" / "edgeseg"
    monkeypatch.setenv("EDGESEG_HOME", os.path.join("~", "x"))
    assert zoo.home() == Path.home() / "x"
