"""Named models and verified, resumable downloads into a local cache.

``edgeseg.load("yolov8n-seg")`` and ``edgeseg fetch NAME_OR_URL`` resolve through here. Files live
under ``$EDGESEG_HOME`` (default ``~/.cache/edgeseg``): registry models in ``models/``, files
fetched by URL in ``urls/<hash>/``. A download is written to ``<file>.part`` (resumed with an HTTP
``Range`` request when a previous attempt was cut off), checked against its sha256 and only then
renamed into place, so the cache never holds half a file under a final name. Entries without a
pinned digest record the sha256 of their first download (or of the file first found in the cache)
in ``digests.json`` and are verified against it afterwards.

Ultralytics publishes its YOLO-seg weights only as PyTorch ``.pt`` files (github.com/ultralytics/assets
releases); edgeseg cannot run those, and no official ONNX files exist. Their entries therefore say how
to export the ONNX file once and where to put it; ``fetch`` of such an entry fails with that instruction.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.resources
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, urlopen

from .errors import ModelError

log = logging.getLogger("edgeseg")

CHUNK = 1 << 16
DIGESTS_FILE = "digests.json"


class ZooError(ModelError):
    """A model could not be found, downloaded or verified (a ``ModelError``, hence a ``ValueError``)."""


@dataclass(frozen=True)
class ZooEntry:
    """A named model.

    Attributes:
        name: the name users pass to ``edgeseg.load`` and ``edgeseg fetch``.
        filename: the file name in the cache (``$EDGESEG_HOME/models/<filename>``).
        format: file format edgeseg runs (``"onnx"`` or ``"tflite"``).
        licence: the licence of the weights.
        description: one line for ``edgeseg models``.
        url: where the runnable file is downloaded from; ``None`` when nobody publishes it (see ``export``).
        sha256: pinned digest of the file at ``url``; ``None``: recorded at first download.
        size: size in bytes of the file at ``url``, when known.
        source: the official upstream release file this entry derives from.
        export: for entries without ``url``: the command that makes the file from ``source``.
        bundled: the file ships inside the edgeseg package (``edgeseg/models/<filename>``): nothing to download.
    """

    name: str
    filename: str
    format: str
    licence: str
    description: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    source: str | None = None
    export: str | None = None
    bundled: bool = False


def _ultralytics(name: str, release: str, docs: str) -> ZooEntry:
    return ZooEntry(
        name=name,
        filename=f"{name}.onnx",
        format="onnx",
        licence="AGPL-3.0",
        description=f"Ultralytics {name} (COCO, 80 classes). Ultralytics publishes no ONNX file, only {name}.pt "
        f"(listed in {docs}): export it once with Ultralytics",
        source=f"https://github.com/ultralytics/assets/releases/download/{release}/{name}.pt",
        export=f"yolo export model={name}.pt format=onnx",
    )


def _bundled(name: str, filename: str, what: str) -> ZooEntry:
    return ZooEntry(
        name=name,
        filename=filename,
        format="onnx",
        licence="Apache-2.0",
        description=f"edgeseg's own {what} model of 6 factory-part classes, trained on synthetic conveyor scenes "
        "(bundled; card: models/partseg.md)",
        bundled=True,
    )


#: The model ``edgeseg predict`` and ``edgeseg demo`` use when none is given.
DEFAULT_MODEL = "partseg"

#: The built-in registry. ``register`` adds entries (e.g. models on your own server).
REGISTRY: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        _ultralytics("yolov8n-seg", "v8.2.0", "docs.ultralytics.com/models/yolov8"),
        _ultralytics("yolov8s-seg", "v8.2.0", "docs.ultralytics.com/models/yolov8"),
        _ultralytics("yolo11n-seg", "v8.3.0", "docs.ultralytics.com/models/yolo11"),
        _ultralytics("yolo11s-seg", "v8.3.0", "docs.ultralytics.com/models/yolo11"),
        _bundled("partseg", "partseg.onnx", "FP32"),
        _bundled("partseg-int8", "partseg-int8.onnx", "INT8"),
    )
}


def register(entry: ZooEntry) -> None:
    """Add (or replace) a named model, e.g. one hosted on your own server with its sha256."""
    if not entry.name or "/" in entry.name or "/" in entry.filename or not entry.filename:
        raise ValueError(f"invalid zoo entry name/filename: {entry.name!r}, {entry.filename!r}")
    REGISTRY[entry.name] = entry


def list_models() -> list[ZooEntry]:
    """The registry's entries, sorted by name."""
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def home() -> Path:
    """The cache directory: ``$EDGESEG_HOME`` or ``~/.cache/edgeseg``."""
    env = os.environ.get("EDGESEG_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgeseg"


def is_url(text: str) -> bool:
    """Whether ``text`` is an http(s) URL."""
    return text.startswith(("http://", "https://"))


def is_model_name(text: str | os.PathLike) -> bool:
    """Whether ``text`` is a registry name or an http(s) URL (what ``resolve`` accepts)."""
    return isinstance(text, str) and (text in REGISTRY or is_url(text))


def _url_entry(url: str) -> ZooEntry:
    base = unquote(Path(urlparse(url).path).name)
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".") or "model.onnx"
    fmt = "tflite" if base.lower().endswith(".tflite") else "onnx"
    return ZooEntry(name=url, filename=base, format=fmt, licence="unknown", description="fetched by URL", url=url)


def get(name_or_url: str) -> ZooEntry:
    """The registry entry for a name, or an ad-hoc entry for an http(s) URL."""
    if name_or_url in REGISTRY:
        return REGISTRY[name_or_url]
    if is_url(name_or_url):
        return _url_entry(name_or_url)
    raise ZooError(f"{name_or_url!r} is not a model name or an http(s) URL; known names: {', '.join(sorted(REGISTRY))}")


def _relpath(entry: ZooEntry) -> str:
    if entry.url is not None and entry.name == entry.url:
        return f"urls/{hashlib.sha256(entry.url.encode()).hexdigest()[:16]}/{entry.filename}"
    return f"models/{entry.filename}"


def cache_path(name_or_url: str) -> Path:
    """Where the model's file lives in the cache (whether or not it is there)."""
    return home() / _relpath(get(name_or_url))


def _read_digests() -> dict[str, Any]:
    path = home() / DIGESTS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ZooError(f"{path}: unreadable digest record ({exc}); delete it to record digests afresh") from exc
    return data if isinstance(data, dict) else {}


def _record_digest(entry: ZooEntry, sha256: str) -> None:
    digests = _read_digests()
    digests[_relpath(entry)] = {"sha256": sha256, "source": entry.url or entry.source}
    path = home() / DIGESTS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(digests, indent=1, sort_keys=True))
    os.replace(tmp, path)


def expected_digest(name_or_url: str) -> tuple[str | None, str]:
    """The sha256 a model's file must have, and where it comes from: ``"pinned"``, ``"recorded"`` or ``"none"``."""
    entry = get(name_or_url)
    if entry.sha256:
        return entry.sha256.lower(), "pinned"
    rec = _read_digests().get(_relpath(entry))
    if isinstance(rec, dict) and isinstance(rec.get("sha256"), str):
        return rec["sha256"], "recorded"
    return None, "none"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _bring_it_message(entry: ZooEntry, dest: Path) -> str:
    if entry.export:
        how = f"make it with `{entry.export}` (from {entry.source})"
    else:
        how = "copy the file from a machine that is online"
    return (
        f"{how}, then put it at {dest} (or set EDGESEG_HOME to a folder holding models/{entry.filename}), "
        f"or pass its path to edgeseg.load() / the command line"
    )


def verify_cached(name_or_url: str) -> Path | None:
    """The cached file, checked against its pinned or recorded sha256; ``None`` if not cached.

    A file with no digest yet (an entry without a pinned one, placed in the cache by hand) has its
    digest recorded now. Raises ``ZooError`` when the file does not match its digest.
    """
    entry = get(name_or_url)
    dest = home() / _relpath(entry)
    if not dest.is_file():
        return None
    expected, kind = expected_digest(name_or_url)
    actual = sha256_file(dest)
    if expected is None:
        _record_digest(entry, actual)
        log.info("%s: recorded sha256 %s; the file is verified against it from now on", dest, actual)
    elif actual != expected:
        if entry.url:
            fix = f"run `edgeseg fetch {entry.name}` to delete it and download it again"
        else:
            fix = f"delete it; to bring a good copy, {_bring_it_message(entry, dest)}"
        raise ZooError(
            f"{dest}: corrupt or modified cached file: sha256 {actual} does not match the {kind} {expected}; {fix}"
            + (
                f" (if you replaced it on purpose, remove its line from {home() / DIGESTS_FILE})"
                if kind == "recorded"
                else ""
            )
        )
    return dest


def fetch(name_or_url: str, progress: bool = True, *, retries: int = 3, timeout: float = 30.0) -> Path:
    """Download a named model (or any http(s) URL) into the cache, verified; return its path.

    A cached file that matches its digest is returned at once. A cached file that does not is
    deleted and downloaded again. Downloads resume from a leftover ``.part`` file; an interrupted
    transfer is resumed up to ``retries`` times.

    Raises:
        ZooError: unknown name, no download for this entry (with the export instruction), network
            unreachable (with how to bring the file by hand), or a digest mismatch (file deleted).
    """
    entry = get(name_or_url)
    if entry.bundled:
        return bundled_path(entry)
    dest = home() / _relpath(entry)
    try:
        cached = verify_cached(name_or_url)
    except ZooError as exc:
        if entry.url is None:
            raise
        log.warning("%s; deleting it and downloading again", exc)
        dest.unlink()
        cached = None
    if cached is not None:
        return cached
    if entry.url is None:
        what = f"no official {entry.format.upper()} download exists"
        raise ZooError(f"{entry.name}: not in the cache and {what}; " + _bring_it_message(entry, dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        print(f"edgeseg: downloading {entry.url} to {dest}", file=sys.stderr)
    for attempt in range(retries + 1):
        try:
            _download(entry, dest, progress=progress, timeout=timeout)
            break
        except _InterruptedError as exc:
            if attempt == retries:
                raise ZooError(f"{exc}; run `edgeseg fetch {entry.name}` again to resume") from None
            log.warning("%s; resuming (attempt %d of %d)", exc, attempt + 2, retries + 1)
    return dest


def bundled_path(entry: ZooEntry) -> Path:
    """Where a bundled model lives in this installation; ``ZooError`` when it is missing."""
    path = Path(str(importlib.resources.files("edgeseg") / "models" / entry.filename))
    if not path.is_file():
        raise ZooError(
            f"{entry.name}: {path} is missing from this installation; reinstall edgeseg, "
            "or make it with `edgeseg train --publish DIR` and pass the file's path"
        )
    return path


def resolve(name_or_url: str, progress: bool = True) -> Path:
    """The local file of a named model for ``edgeseg.load``: bundled, verified if cached, else fetched."""
    entry = get(name_or_url)
    if entry.bundled:
        return bundled_path(entry)
    cached = verify_cached(name_or_url)
    if cached is not None:
        log.debug("%s: using cached %s", entry.name, cached)
        return cached
    if progress:
        print(f"edgeseg: {entry.name} is not in the cache ({home()})", file=sys.stderr)
    return fetch(name_or_url, progress=progress)


class _InterruptedError(Exception):
    """The transfer stopped part-way; the ``.part`` file holds what arrived."""


def _download(entry: ZooEntry, dest: Path, progress: bool, timeout: float) -> None:
    assert entry.url is not None
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "edgeseg", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urlopen(Request(entry.url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is no prefix of this file (or is all of it): start over
            log.warning("%s: server refused to resume at byte %d; starting over", entry.url, offset)
            part.unlink()
            return _download(entry, dest, progress, timeout)
        raise ZooError(f"{entry.url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ZooError(
            f"cannot download {entry.name} from {entry.url}: {reason}. If this machine is offline, "
            + _bring_it_message(entry, dest)
        ) from None
    with resp:
        length = resp.headers.get("Content-Length")
        remaining = int(length) if length is not None and length.isdigit() else None
        if offset and resp.status == 206 and _range_start(resp.headers.get("Content-Range")) == offset:
            mode = "ab"
        else:
            if offset:
                log.warning("%s: server ignored the resume request; downloading from the start", entry.url)
            offset, mode = 0, "wb"
        total = None if remaining is None else offset + remaining
        digest = hashlib.sha256()
        if mode == "ab":
            with open(part, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        received = offset
        from tqdm import tqdm

        with open(part, mode) as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=entry.filename, disable=not progress, leave=False,
        ) as bar:  # fmt: skip
            try:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                f.flush()
                os.fsync(f.fileno())
                raise _InterruptedError(f"{entry.url}: download interrupted after {received} bytes ({exc})") from None
            f.flush()
            os.fsync(f.fileno())
    if total is not None and received < total:
        raise _InterruptedError(f"{entry.url}: connection closed after {received} of {total} bytes")
    actual = digest.hexdigest()
    expected, kind = expected_digest(entry.name)
    if expected is not None and actual != expected:
        part.unlink()
        raise ZooError(
            f"{entry.url}: checksum mismatch: sha256 {actual} does not match the {kind} {expected}; "
            "the download was deleted"
            + (f" (if the file changed upstream on purpose, remove its line from {home() / DIGESTS_FILE})"
               if kind == "recorded" else "")
        )  # fmt: skip
    if entry.size is not None and received != entry.size:
        part.unlink()
        raise ZooError(f"{entry.url}: got {received} bytes, expected {entry.size}; the download was deleted")
    os.replace(part, dest)
    _fsync_dir(dest.parent)
    if expected is None:
        _record_digest(entry, actual)
        log.info("%s: recorded sha256 %s at first download", dest, actual)


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-", content_range or "")
    return int(m.group(1)) if m else None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def describe(entry: ZooEntry) -> dict[str, Any]:
    """One row of ``edgeseg models``: name, format, size, licence, digest status, cached (or bundled) path or
    ``None``, and whether the file is bundled with edgeseg."""
    if entry.bundled:
        try:
            local: str | None = str(bundled_path(entry))
        except ZooError:
            local = None
        return {
            "name": entry.name,
            "format": entry.format,
            "size": Path(local).stat().st_size if local else None,
            "licence": entry.licence,
            "digest": "bundled: installed with edgeseg",
            "cached": local,
            "download": "none needed: bundled with edgeseg",
            "description": entry.description,
            "bundled": True,
        }
    expected, kind = expected_digest(entry.name)
    path = home() / _relpath(entry)
    if kind == "pinned":
        digest = f"pinned {expected[:12]}…" if expected else "pinned"
    elif kind == "recorded":
        digest = f"recorded {expected[:12]}… (at first download)" if expected else "recorded"
    elif entry.url:
        digest = "not pinned: recorded at first download"
    else:
        digest = "not pinned: recorded when first cached"
    return {
        "name": entry.name,
        "format": entry.format,
        "size": entry.size,
        "licence": entry.licence,
        "digest": digest,
        "cached": str(path) if path.is_file() else None,
        "download": entry.url or f"none official; `{entry.export}`, then put the file at {path}",
        "description": entry.description,
        "bundled": False,
    }
