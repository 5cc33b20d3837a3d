"""Model zoo: named models, verified resumable downloads, the cache (issue 5, section 2).

Every download comes from a local HTTP server on 127.0.0.1 written here (with Range, ETag and If-Range
support, and modes that drop the connection mid-file, ignore Range, send no length, claim a huge length or
trickle bytes); no test touches the internet. The hardening tests (issue 12) follow the original ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    etag: bool = True  # send an ETag (from the body's sha256) and honour If-Range
    honour_if_range: bool = True  # False: apply Range even when If-Range names another version
    last_modified: str | None = None  # a Last-Modified header to send
    send_length: bool = True  # False: no Content-Length; the end of the body is the connection closing
    content_type: str = "application/octet-stream"
    claim_length: int | None = None  # a Content-Length to claim whatever the body (always a 200)
    trickle: float | None = None  # seconds between single bytes, for at most 3 s
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    if_ranges: list[str | None] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        served = self.server.served  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        served.requests.append((self.path, range_header))
        served.if_ranges.append(if_range)
        body = served.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        etag = f'"{_sha(body)[:16]}"' if served.etag else None
        validators = {v for v in (etag, served.last_modified) if v}
        start = 0
        honoured = if_range is None or not served.honour_if_range or if_range in validators
        if range_header and not served.ignore_range and served.claim_length is None and honoured:
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
        if etag:
            self.send_header("ETag", etag)
        if served.last_modified:
            self.send_header("Last-Modified", served.last_modified)
        if served.claim_length is not None:
            self.send_header("Content-Length", str(served.claim_length))
        elif served.send_length:
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", served.content_type)
        self.end_headers()
        try:
            if served.trickle is not None:
                stop = time.monotonic() + 3.0
                for i in range(len(payload)):
                    if time.monotonic() > stop:
                        return
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    time.sleep(served.trickle)
                return
            if served.drop_after is not None:
                cut, served.drop_after = served.drop_after, None
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)
        except OSError:  # the client hung up (a refused or cut-off download)
            pass


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


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pb(number: int, value: int | bytes) -> bytes:
    """One protobuf field: a varint for an int, length-delimited for bytes."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _onnx_payload(n: int = 300_000, seed: int = 0) -> bytes:
    """A well-formed ONNX ModelProto (IR 8, opset 17) whose graph holds one uint8 initializer of n random bytes."""
    raw = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    tensor = _pb(1, n) + _pb(2, 2) + _pb(8, b"w") + _pb(9, raw)
    graph = _pb(5, tensor) + _pb(2, b"g")
    return _pb(1, 8) + _pb(2, b"edgeseg-test") + _pb(7, graph) + _pb(8, _pb(2, 17))


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
    served.drop_after = 100_000
    zoo.register(_entry(base, sha256=_sha(data)))
    with pytest.raises(ZooError, match="again to resume"):
        zoo.fetch("test-model", progress=False, retries=0)
    served.ignore_range = True
    path = zoo.fetch("test-model", progress=False)
    assert path.read_bytes() == data
    assert served.requests[1][1] is not None  # it asked to resume, got a 200 and started over
    assert len(served.requests) == 2


def test_stale_part_longer_than_the_file_restarts(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _payload(10_000)
    served.files["/m.onnx"] = data
    served.drop_after = 5_000
    zoo.register(_entry(base, sha256=_sha(data)))
    with pytest.raises(ZooError, match="again to resume"):
        zoo.fetch("test-model", progress=False, retries=0)
    part = isolated_zoo / "models" / "test-model.onnx.part"
    part.write_bytes(b"x" * 20_000)  # same validator, but longer than the file
    assert zoo.fetch("test-model", progress=False).read_bytes() == data  # 416, then from the start
    assert served.requests[1][1] == "bytes=20000-" and served.requests[2][1] is None


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
    data = _onnx_payload()
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
    served.files["/m.onnx"] = _onnx_payload(seed=1)  # upstream changed: the recorded digest catches it
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
    data = _onnx_payload()  # also fetched by URL below, without a pinned digest: format-checked
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


# --- Hardening (issue 12): what a download may install, limits, links, read-only caches, entry names ---

MAX_ENV, DEADLINE_ENV = "EDGESEG_MAX_DOWNLOAD_MB", "EDGESEG_DOWNLOAD_DEADLINE"
HTML = b"<!DOCTYPE html>\n<html><head><title>Hotel Wi-Fi</title></head><body>Please log in</body></html>\n"


def _no_record(home: Path) -> bool:
    digests = home / "digests.json"
    return not digests.exists() or not json.loads(digests.read_text())


def _installed(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "models").glob("*")) if (home / "models").is_dir() else []


def test_captive_portal_page_is_refused_not_installed(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    served.files["/m.onnx"] = HTML
    served.content_type = "text/html"
    zoo.register(_entry(base))  # no pinned digest: only the format check stands between the page and the cache
    with pytest.raises(ZooError, match=r"got an HTML page \(a captive portal or login page\?\)"):
        zoo.fetch("test-model", progress=False)
    assert _installed(isolated_zoo) == [] and _no_record(isolated_zoo)


def test_pinned_mismatch_says_what_arrived(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    served.files["/m.onnx"] = HTML
    zoo.register(_entry(base, sha256=_sha(_payload())))
    with pytest.raises(ZooError, match=r"checksum mismatch.*HTML page"):
        zoo.fetch("test-model", progress=False)
    assert _installed(isolated_zoo) == []


@pytest.mark.parametrize("onnx_package", [True, False], ids=["onnx-package", "wire-format-only"])
def test_truncated_download_without_length_is_refused(
    server: tuple[str, Served], isolated_zoo: Path, monkeypatch: pytest.MonkeyPatch, onnx_package: bool
) -> None:
    """No Content-Length and the connection closed early: the ONNX structure shows the cut."""
    if not onnx_package:
        monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails: the fallback check runs
    base, served = server
    served.files["/m.onnx"] = _onnx_payload()
    served.send_length = False
    served.drop_after = 150_000
    zoo.register(_entry(base))
    with pytest.raises(ZooError, match=r"truncated"):
        zoo.fetch("test-model", progress=False)
    assert _installed(isolated_zoo) == [] and _no_record(isolated_zoo)


def test_complete_download_without_length_is_installed(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _onnx_payload()
    served.files["/m.onnx"] = data
    served.send_length = False
    zoo.register(_entry(base))
    assert zoo.fetch("test-model", progress=False).read_bytes() == data
    assert zoo.expected_digest("test-model") == (_sha(data), "recorded")


def test_resume_after_upstream_change_does_not_splice(server: tuple[str, Served], isolated_zoo: Path) -> None:
    """First half of v1 + rest of v2 must never be installed: the resume carries If-Range with v1's ETag."""
    base, served = server
    v1, v2 = _onnx_payload(seed=1), _onnx_payload(seed=2)
    assert len(v1) == len(v2)
    served.files["/m.onnx"] = v1
    served.drop_after = 100_000
    zoo.register(_entry(base))
    with pytest.raises(ZooError, match="again to resume"):
        zoo.fetch("test-model", progress=False, retries=0)
    served.files["/m.onnx"] = v2  # a new upload with a new ETag
    path = zoo.fetch("test-model", progress=False)
    assert path.read_bytes() == v2 and zoo.expected_digest("test-model") == (_sha(v2), "recorded")
    assert served.requests[1][1] is not None and served.if_ranges[1] == f'"{_sha(v1)[:16]}"'


def test_resume_checks_the_etag_when_the_server_ignores_if_range(
    server: tuple[str, Served], isolated_zoo: Path
) -> None:
    base, served = server
    v1, v2 = _onnx_payload(seed=1), _onnx_payload(seed=2)
    served.files["/m.onnx"] = v1
    served.drop_after = 100_000
    served.honour_if_range = False  # answers 206 with v2's bytes and v2's ETag
    zoo.register(_entry(base))
    with pytest.raises(ZooError, match="again to resume"):
        zoo.fetch("test-model", progress=False, retries=0)
    served.files["/m.onnx"] = v2
    assert zoo.fetch("test-model", progress=False).read_bytes() == v2
    assert served.requests[-1][1] is None  # the spliced 206 was dropped and the download started over


def test_resume_uses_last_modified_without_an_etag(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _onnx_payload()
    served.files["/m.onnx"] = data
    served.etag = False
    served.last_modified = "Wed, 21 Oct 2015 07:28:00 GMT"
    served.drop_after = 100_000
    zoo.register(_entry(base))
    assert zoo.fetch("test-model", progress=False).read_bytes() == data
    assert served.requests[1][1] is not None and served.if_ranges[1] == served.last_modified


def test_no_validator_means_no_resume(server: tuple[str, Served], isolated_zoo: Path) -> None:
    """A server that gives no ETag or Last-Modified cannot prove the file unchanged: start over, never splice."""
    base, served = server
    data = _onnx_payload()
    served.files["/m.onnx"] = data
    served.etag = False
    served.drop_after = 100_000
    zoo.register(_entry(base))
    assert zoo.fetch("test-model", progress=False).read_bytes() == data
    assert [r for _, r in served.requests] == [None, None]


def test_symlinked_part_is_replaced_not_written_through(
    server: tuple[str, Served], isolated_zoo: Path, tmp_path: Path
) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    zoo.register(_entry(base, sha256=_sha(data)))
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"precious")
    part = isolated_zoo / "models" / "test-model.onnx.part"
    part.parent.mkdir(parents=True)
    part.symlink_to(outside)
    assert zoo.fetch("test-model", progress=False).read_bytes() == data
    assert outside.read_bytes() == b"precious" and not part.is_symlink()
    assert served.requests[0][1] is None  # it did not try to "resume" the link's target either


def test_symlinked_digest_temp_file_is_not_written_through(
    server: tuple[str, Served], isolated_zoo: Path, tmp_path: Path
) -> None:
    base, served = server
    served.files["/m.onnx"] = _onnx_payload()
    zoo.register(_entry(base))
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    isolated_zoo.mkdir()
    (isolated_zoo / "digests.json.tmp").symlink_to(outside)
    zoo.fetch("test-model", progress=False)
    assert outside.read_text() == "precious" and zoo.expected_digest("test-model")[1] == "recorded"


def test_symlinked_cached_file_is_replaced_by_the_download(
    server: tuple[str, Served], isolated_zoo: Path, tmp_path: Path
) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    zoo.register(_entry(base, sha256=_sha(data)))
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not the model")
    dest = isolated_zoo / "models" / "test-model.onnx"
    dest.parent.mkdir(parents=True)
    dest.symlink_to(outside)
    assert zoo.fetch("test-model", progress=False).read_bytes() == data
    assert not dest.is_symlink() and outside.read_bytes() == b"not the model"


def test_advertised_size_over_the_cap_is_refused_up_front(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    served.files["/m.onnx"] = _payload(1 << 20)
    served.claim_length = 50_000_000_000  # "50 GB", against the default cap of 2 GiB
    zoo.register(_entry(base, sha256="0" * 64))
    with pytest.raises(ZooError, match=r"50000000000 bytes.*more than the download cap of 2048 MiB"):
        zoo.fetch("test-model", progress=False)
    assert len(served.requests) == 1 and _installed(isolated_zoo) == []


def test_streamed_bytes_over_the_cap_stop_the_download(
    server: tuple[str, Served], isolated_zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, served = server
    served.files["/m.onnx"] = _onnx_payload(3 << 20)
    served.send_length = False  # nothing announced: the cap is enforced on the bytes as they arrive
    zoo.register(_entry(base))
    monkeypatch.setenv(MAX_ENV, "1")
    with pytest.raises(ZooError, match=r"more than the download cap of 1 MiB.*EDGESEG_MAX_DOWNLOAD_MB"):
        zoo.fetch("test-model", progress=False)
    assert _installed(isolated_zoo) == [] and _no_record(isolated_zoo)


def test_max_bytes_argument_and_entry_size(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    data = _onnx_payload(100_000)
    served.files["/m.onnx"] = data
    zoo.register(_entry(base))
    with pytest.raises(ZooError, match="more than the download cap of 50000 bytes"):
        zoo.fetch("test-model", progress=False, max_bytes=50_000)
    assert zoo.fetch("test-model", progress=False, max_bytes=len(data)).read_bytes() == data
    big = ZooEntry("big", "big.onnx", "onnx", "MIT", "too big", url=base + "/m.onnx", size=10 << 30)
    zoo.register(big)
    with pytest.raises(ZooError, match="more than the download cap"):
        zoo.fetch("big", progress=False)
    assert len(served.requests) == 2  # the oversized entry was refused before any request


@pytest.mark.parametrize("gap", [0.02, 1.0], ids=["trickle", "stall"])
def test_slow_server_is_cut_off_at_the_deadline(
    server: tuple[str, Served], isolated_zoo: Path, monkeypatch: pytest.MonkeyPatch, gap: float
) -> None:
    base, served = server
    served.files["/m.onnx"] = _onnx_payload(1000)
    served.send_length = False
    served.trickle = gap  # one byte every `gap` seconds
    zoo.register(_entry(base))
    monkeypatch.setenv(DEADLINE_ENV, "0.4")
    started = time.monotonic()
    with pytest.raises(ZooError, match=r"deadline of 0\.4 s.*EDGESEG_DOWNLOAD_DEADLINE"):
        zoo.fetch("test-model", progress=False)
    assert time.monotonic() - started < 2.0
    assert _installed(isolated_zoo) in ([], ["test-model.onnx.part", "test-model.onnx.part.json"])
    with pytest.raises(ZooError, match=r"deadline of 0\.2 s"):
        zoo.fetch("test-model", progress=False, deadline=0.2)


@pytest.mark.parametrize(("var", "value"), [(MAX_ENV, "lots"), (MAX_ENV, "0"), (DEADLINE_ENV, "-1")])
def test_bad_limit_settings_are_zoo_errors(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    zoo.register(_entry(f"http://127.0.0.1:{_closed_port()}"))
    monkeypatch.setenv(var, value)
    with pytest.raises(ZooError, match=var):
        zoo.fetch("test-model", progress=False)


def test_tflite_downloads_are_format_checked(server: tuple[str, Served], isolated_zoo: Path) -> None:
    require_shared()
    base, served = server
    data = (MODELS / "yolo11n-seg-int8.tflite").read_bytes()
    served.files["/m.tflite"] = data
    served.files["/fake.tflite"] = _onnx_payload()
    served.send_length = False
    assert zoo.fetch(f"{base}/m.tflite", progress=False).read_bytes() == data
    with pytest.raises(ZooError, match=r"not a TFLite model: got an ONNX model"):
        zoo.fetch(f"{base}/fake.tflite", progress=False)
    served.files["/cut.tflite"] = data
    served.drop_after = len(data) // 2
    with pytest.raises(ZooError, match="truncated"):
        zoo.fetch(f"{base}/cut.tflite", progress=False)


@pytest.mark.parametrize(
    ("content", "what"),
    [(HTML, "HTML page"), (b"PK\x03\x04" + bytes(100), "ZIP archive"), (b"", "empty"), (bytes(range(256)), "")],
)
def test_file_found_in_the_cache_is_format_checked_before_its_digest_is_recorded(
    isolated_zoo: Path, content: bytes, what: str
) -> None:
    dest = isolated_zoo / "models" / "yolov8n-seg.onnx"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(content)
    with pytest.raises(ZooError, match=rf"{dest}.*not an ONNX model.*{what}"):
        zoo.verify_cached("yolov8n-seg")
    assert _no_record(isolated_zoo)


# Read-only caches. Tests may run as root, where chmod 0555 does not stop writes: there the cache is made
# read-only with a read-only bind mount (or, failing that, `chattr +i`), so the kernel refuses every write.


def _ok(*cmd: str) -> bool:
    return shutil.which(cmd[0]) is not None and subprocess.run(cmd, capture_output=True).returncode == 0


def _writable(path: Path) -> bool:
    probe = path / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@contextmanager
def _read_only(path: Path) -> Iterator[str]:
    """Make the tree at ``path`` read-only for this process, root included; yields how it was done."""
    p = str(path)
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        tree = [path, *path.rglob("*")]
        for q in tree:
            q.chmod(0o555 if q.is_dir() else 0o444)
        try:
            yield "chmod"
        finally:
            for q in tree:
                q.chmod(0o755 if q.is_dir() else 0o644)
    elif _ok("mount", "--bind", p, p):
        try:
            if not _ok("mount", "-o", "remount,bind,ro", p) or _writable(path):
                pytest.skip("cannot make a read-only bind mount")
            yield "read-only bind mount"
        finally:
            _ok("umount", p) or _ok("umount", "-l", p)
    elif _ok("chattr", "-R", "+i", p):
        try:
            if _writable(path):
                pytest.skip("chattr +i did not stop writes")
            yield "chattr +i"
        finally:
            _ok("chattr", "-R", "-i", p)
    else:
        pytest.skip("running as root without mount or chattr: cannot make a read-only directory")


def test_read_only_cache_loads_provisioned_models(isolated_zoo: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_shared()
    data = (MODELS / SMALL_MODEL).read_bytes()
    models = isolated_zoo / "models"
    models.mkdir(parents=True)
    (models / "yolov8n-seg.onnx").write_bytes(data)  # no digest recorded
    (models / "yolo11n-seg.onnx").write_bytes(data)  # digest recorded at provisioning
    (isolated_zoo / "digests.json").write_text(json.dumps({"models/yolo11n-seg.onnx": {"sha256": _sha(data)}}))
    before = sorted(p.name for p in isolated_zoo.rglob("*"))
    with _read_only(isolated_zoo), caplog.at_level(logging.WARNING, logger="edgeseg"):
        assert Path(edgeseg.load("yolo11n-seg").spec.path) == models / "yolo11n-seg.onnx"
        assert not caplog.records  # recorded and matching: verified without writing, nothing to say
        assert Path(edgeseg.load("yolov8n-seg").spec.path) == models / "yolov8n-seg.onnx"
        assert "cannot record" in caplog.text and "read-only" in caplog.text
        assert zoo.fetch("yolo11n-seg", progress=False) == models / "yolo11n-seg.onnx"
        with pytest.raises(ZooError, match=r"yolov8s-seg.*no official ONNX download"):
            zoo.fetch("yolov8s-seg", progress=False)
    assert sorted(p.name for p in isolated_zoo.rglob("*")) == before


def test_read_only_cache_refuses_a_tampered_file(isolated_zoo: Path) -> None:
    data = _onnx_payload(1000)
    dest = isolated_zoo / "models" / "yolov8n-seg.onnx"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data + b"x")
    (isolated_zoo / "digests.json").write_text(json.dumps({"models/yolov8n-seg.onnx": {"sha256": _sha(data)}}))
    with _read_only(isolated_zoo), pytest.raises(ZooError, match="corrupt or modified"):
        zoo.verify_cached("yolov8n-seg")


def test_download_into_a_read_only_cache_is_a_zoo_error(server: tuple[str, Served], isolated_zoo: Path) -> None:
    base, served = server
    served.files["/m.onnx"] = _onnx_payload()
    zoo.register(_entry(base))
    isolated_zoo.mkdir()
    with _read_only(isolated_zoo), pytest.raises(ZooError, match=rf"{isolated_zoo}.*writable"):
        zoo.fetch("test-model", progress=False)
    (isolated_zoo / "models").mkdir()
    with _read_only(isolated_zoo), pytest.raises(ZooError, match=rf"{isolated_zoo / 'models'}.*writable"):
        zoo.fetch("test-model", progress=False)


@pytest.mark.parametrize(
    ("digests", "match"),
    [
        ("{not json", "unreadable digest record"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"models/yolov8n-seg.onnx": {"sha256": 5}}), "models/yolov8n-seg.onnx.*malformed"),
    ],
)
def test_corrupt_digest_record_is_a_zoo_error_and_keeps_the_file(isolated_zoo: Path, digests: str, match: str) -> None:
    dest = isolated_zoo / "models" / "yolov8n-seg.onnx"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(_onnx_payload(1000))
    (isolated_zoo / "digests.json").write_text(digests)
    with pytest.raises(ZooError, match=rf"{isolated_zoo / 'digests.json'}.*{match}"):
        zoo.verify_cached("yolov8n-seg")
    assert (isolated_zoo / "digests.json").read_text() == digests and dest.exists()


def test_corrupt_digest_record_does_not_delete_a_cached_download(
    server: tuple[str, Served], isolated_zoo: Path
) -> None:
    base, served = server
    data = _onnx_payload()
    served.files["/m.onnx"] = data
    zoo.register(_entry(base))
    path = zoo.fetch("test-model", progress=False)
    (isolated_zoo / "digests.json").write_text("{not json")
    with pytest.raises(ZooError, match="unreadable digest record"):
        zoo.fetch("test-model", progress=False)
    assert path.read_bytes() == data and len(served.requests) == 1


@pytest.mark.parametrize("which", ["test-model.onnx", "test-model.onnx.part"])
def test_cache_path_that_is_a_directory_is_a_zoo_error(
    server: tuple[str, Served], isolated_zoo: Path, which: str
) -> None:
    base, served = server
    data = _payload()
    served.files["/m.onnx"] = data
    zoo.register(_entry(base, sha256=_sha(data)))
    (isolated_zoo / "models" / which / "sub").mkdir(parents=True)
    with pytest.raises(ZooError, match=str(isolated_zoo / "models" / which)):
        zoo.fetch("test-model", progress=False)


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("..", "onnx"),
        (".", "onnx"),
        ("../evil.onnx", "onnx"),
        ("sub/evil.onnx", "onnx"),
        ("sub\\evil.onnx", "onnx"),
        ("/etc/evil.onnx", "onnx"),
        ("evil\x00.onnx", "onnx"),
        ("", "onnx"),
        (".onnx", "onnx"),
        ("model.sh", "onnx"),
        ("model.onnx", "tflite"),
        ("model.onnx", "pt"),
    ],
)
def test_register_refuses_filenames_that_are_not_plain_model_files(filename: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="invalid zoo entry"):
        zoo.register(ZooEntry("bad", filename, fmt, "MIT", "a bad entry", url="http://127.0.0.1:9/m"))
    assert "bad" not in zoo.REGISTRY


def test_register_refuses_bad_urls_and_digests() -> None:
    for kwargs in ({"url": "file:///etc/passwd"}, {"sha256": "abc"}, {"size": -1}):
        with pytest.raises(ZooError, match="invalid zoo entry"):
            zoo.register(ZooEntry("bad", "bad.onnx", "onnx", "MIT", "a bad entry", **kwargs))  # type: ignore[arg-type]
    zoo.register(ZooEntry("good", "Good-1.2.TFLite", "tflite", "MIT", "fine", url="https://example.invalid/m"))
    assert zoo.get("good").filename == "Good-1.2.TFLite"


def test_cli_fetch_limits(server: tuple[str, Served], capsys: pytest.CaptureFixture[str]) -> None:
    base, served = server
    served.files["/m.onnx"] = _onnx_payload()
    assert main(["fetch", f"{base}/m.onnx", "-q", "--max-mb", "0.1"]) == 2
    assert "more than the download cap of 104857 bytes" in capsys.readouterr().err
    assert main(["fetch", f"{base}/m.onnx", "-q", "--deadline", "0"]) == 2
    assert "deadline=0.0: expected a positive number of seconds" in capsys.readouterr().err
    assert main(["fetch", f"{base}/m.onnx", "-q", "--max-mb", "1", "--deadline", "60"]) == 0
