"""Named models and verified, resumable downloads into a local cache.

``edgeseg.load("yolov8n-seg")`` and ``edgeseg fetch NAME_OR_URL`` resolve through here. Files live
under ``$EDGESEG_HOME`` (default ``~/.cache/edgeseg``): registry models in ``models/``, files
fetched by URL in ``urls/<hash>/``.

What the cache guarantees (SECURITY.md says the same for users):

* A download is written to ``<file>.part`` and renamed into place only after it is checked, so the cache
  never holds half a file under a final name. A body shorter than its Content-Length (or Content-Range
  total) is never installed; the ``.part`` is kept and resumed.
* A resume sends ``Range`` with ``If-Range`` carrying the ETag (or Last-Modified) saved from the first
  response in ``<file>.part.json``; a 200 answer, or a 206 whose ETag or total differs, starts over. Without
  a saved validator nothing is resumed, so a file that changed upstream is never spliced onto an old prefix.
* A pinned sha256 is checked exactly. Without one, the file must pass a format check (ONNX: a complete
  ModelProto at the protobuf wire level, parsed with the ``onnx`` package when installed; TFLite: the
  "TFL3" identifier, a FlatBuffer whose tables and buffers lie inside the file, and a whole ZIP where
  metadata is appended) before its sha256 is recorded in ``digests.json``; it is verified against that
  digest on every later load. HTML pages, ZIP/.pt files and text are refused, saying what arrived. When the
  server sends no length (and no chunked framing) and no digest is pinned, the format check is the only
  defence against truncation: it catches a cut inside the ONNX graph or the TFLite tables and buffers, not
  one that falls exactly on a boundary and drops only trailing metadata (ONNX metadata_props after the
  opset, a TFLite file's appended ZIP). Pin a sha256 for a guarantee.
* Nothing is written through a symbolic link: ``.part`` files are opened with ``O_NOFOLLOW`` (a link found
  there is removed and the download starts over), the final name and ``digests.json`` are replaced by
  ``rename``, which replaces a link rather than its target. Reading a cached file through a link (a cache
  pointing into a shared model store) is allowed; it is verified like any other file.
* A read-only cache works: files with a pinned or recorded digest are verified without writing; a file with
  neither is format-checked and loaded with a warning that its digest could not be recorded.
* Downloads are capped (``max_bytes`` / ``$EDGESEG_MAX_DOWNLOAD_MB``, default 2048 MiB: refused up front when
  the announced length is larger, stopped when more bytes arrive) and bounded in time (``deadline`` /
  ``$EDGESEG_DOWNLOAD_DEADLINE`` seconds for the whole fetch, retries included, default 1800).
* Cache I/O failures (permissions, a read-only file system, a corrupt ``digests.json``) raise ``ZooError``
  naming the path.

Ultralytics publishes its YOLO-seg weights only as PyTorch ``.pt`` files (github.com/ultralytics/assets
releases); edgeseg cannot run those, and no official ONNX files exist. Their entries therefore say how
to export the ONNX file once and where to put it; ``fetch`` of such an entry fails with that instruction.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import importlib.resources
import json
import logging
import math
import os
import re
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, urlopen

from .errors import ModelError
from .io import write_atomic
from .modelfile import format_problem

log = logging.getLogger("edgeseg")

CHUNK = 1 << 16
DIGESTS_FILE = "digests.json"
MAX_BYTES_ENV = "EDGESEG_MAX_DOWNLOAD_MB"
DEADLINE_ENV = "EDGESEG_DOWNLOAD_DEADLINE"
DEFAULT_MAX_MB = 2048  # ONNX protobufs cannot exceed 2 GiB; a larger "model" is an error or an attack
DEFAULT_DEADLINE_S = 1800.0
#: The file formats edgeseg runs, and the suffix their file names must have.
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite"}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, which has no user-made symlinks by default


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


def _bundled(name: str, filename: str, what: str, card: str = "partseg.md") -> ZooEntry:
    return ZooEntry(
        name=name,
        filename=filename,
        format="onnx",
        licence="Apache-2.0",
        description=f"edgeseg's own {what} model of 6 factory-part classes, trained on synthetic conveyor scenes "
        f"(bundled; card: models/{card})",
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
        _bundled("partseg-solov2", "partseg-solov2.onnx", "SOLOv2-layout", "partseg-solov2.md"),
        _bundled("partseg-yolact", "partseg-yolact.onnx", "YOLACT-layout", "partseg-yolact.md"),
    )
}


def _filename_problem(filename: object) -> str | None:
    """Why ``filename`` is not a plain file name to create in a cache folder, or ``None``."""
    if not isinstance(filename, str) or not filename:
        return "the file name is empty"
    if filename in (".", ".."):
        return f"the file name {filename!r} names a folder"
    if any(c in filename for c in ("/", "\\", "\0", os.sep, os.altsep or "/")):
        return f"the file name {filename!r} is not a plain file name (it holds a path separator or NUL)"
    if filename.startswith("."):
        return f"the file name {filename!r} is hidden (starts with a dot)"
    if len(filename.encode("utf-8", "surrogatepass")) > 200:  # room for ".part.json" within NAME_MAX
        return "the file name is longer than 200 bytes"
    return None


def register(entry: ZooEntry) -> None:
    """Add (or replace) a named model, e.g. one hosted on your own server with its sha256.

    Raises:
        ZooError: (a ``ValueError``) the name is empty or holds a path separator; the file name is not a plain
            file name ending in the format's suffix (``.onnx``, ``.tflite``); the format is not one edgeseg runs;
            the URL is not http(s); the sha256 is not 64 hex digits; or the size is negative.
    """
    problems = []
    if not isinstance(entry.name, str) or not entry.name.strip() or any(c in entry.name for c in "/\\\0"):
        problems.append("the name must be non-empty and hold no '/', '\\' or NUL")
    name_problem = _filename_problem(entry.filename)
    if name_problem:
        problems.append(name_problem)
    suffix = SUFFIXES.get(entry.format)
    if suffix is None:
        problems.append(f"the format {entry.format!r} is not one of {', '.join(SUFFIXES)}")
    elif name_problem is None and not entry.filename.lower().endswith(suffix):
        problems.append(f"the file name of a {entry.format} model must end with {suffix}")
    if entry.url is not None and not is_url(entry.url):
        problems.append(f"the url {entry.url!r} is not http(s)")
    if entry.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(entry.sha256)):
        problems.append(f"the sha256 {entry.sha256!r} is not 64 hex digits")
    if entry.size is not None and (not isinstance(entry.size, int) or entry.size < 0):
        problems.append(f"the size {entry.size!r} is not a byte count")
    if problems:
        raise ZooError(f"invalid zoo entry {entry.name!r} (filename {entry.filename!r}): {'; '.join(problems)}")
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
    problem = _filename_problem(entry.filename)
    if problem:  # REGISTRY edited by hand: never let a name step outside the cache
        raise ZooError(f"{entry.name}: {problem}")
    if entry.url is not None and entry.name == entry.url:
        return f"urls/{hashlib.sha256(entry.url.encode()).hexdigest()[:16]}/{entry.filename}"
    return f"models/{entry.filename}"


def cache_path(name_or_url: str) -> Path:
    """Where the model's file lives in the cache (whether or not it is there)."""
    return home() / _relpath(get(name_or_url))


# --- Cache I/O: every OSError becomes a ZooError that names the path --------------------------------------


def _cache_error(path: Path, action: str, exc: OSError) -> ZooError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = (
            f"the model cache {home()} is read-only or not writable by this user: set EDGESEG_HOME to a writable "
            "folder, or pass the model file's path"
        )
    elif exc.errno == errno.ENOSPC:
        hint = "the disk is full"
    else:
        hint = f"check the model cache {home()}"
    return ZooError(f"{path}: cannot {action} ({reason}); {hint}")


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file (through links); ``ZooError`` when it cannot be looked at."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise _cache_error(path, "read", exc) from None


def _remove(path: Path) -> None:
    """Delete a file or a link (never a link's target) if present."""
    if not os.path.lexists(path):  # unlink on a read-only mount fails with EROFS even for a missing file
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _cache_error(path, "remove", exc) from None


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_error(Path(exc.filename or path), "create the folder", exc) from None


# --- Digests ------------------------------------------------------------------------------------------------


def _read_digests() -> dict[str, Any]:
    path = home() / DIGESTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ZooError(f"{path}: unreadable digest record ({exc}); delete it to record digests afresh") from exc
    if not isinstance(data, dict):
        raise ZooError(f"{path}: corrupt digest record (not a JSON object); delete it to record digests afresh")
    return data


def _record_digest(entry: ZooEntry, sha256: str) -> None:
    """Record the digest of the entry's file. Raises ``OSError`` when ``digests.json`` cannot be written."""
    digests = _read_digests()
    digests[_relpath(entry)] = {"sha256": sha256, "source": entry.url or entry.source}
    write_atomic(home() / DIGESTS_FILE, json.dumps(digests, indent=1, sort_keys=True).encode("utf-8"))


def _try_record_digest(entry: ZooEntry, sha256: str, path: Path, when: str) -> None:
    """Record a first-seen digest; on a read-only cache say what that costs and carry on."""
    try:
        _record_digest(entry, sha256)
    except OSError as exc:
        log.warning(
            "%s: cannot record its sha256 in %s (%s; a read-only cache?): it is a well-formed %s file, but changes "
            "to it cannot be detected until its digest is recorded there or pinned with register()",
            path, home() / DIGESTS_FILE, exc.strerror or exc, entry.format.upper(),
        )  # fmt: skip
    else:
        log.info("%s: recorded sha256 %s %s; the file is verified against it from now on", path, sha256, when)


def expected_digest(name_or_url: str) -> tuple[str | None, str]:
    """The sha256 a model's file must have, and where it comes from: ``"pinned"``, ``"recorded"`` or ``"none"``."""
    entry = get(name_or_url)
    if entry.sha256:
        return entry.sha256.lower(), "pinned"
    key = _relpath(entry)
    rec = _read_digests().get(key)
    if rec is None:
        return None, "none"
    sha = rec.get("sha256") if isinstance(rec, dict) else None
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        raise ZooError(
            f"{home() / DIGESTS_FILE}: the record of {key} is malformed ({rec!r}); fix it or remove that line"
        )
    return sha.lower(), "recorded"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _format_problem(path: Path, fmt: str, thorough: bool = True) -> str | None:
    """``modelfile.format_problem`` with read errors as ``ZooError``s naming the cached path."""
    try:
        return format_problem(path, fmt, thorough)
    except OSError as exc:
        raise _cache_error(path, "read", exc) from None


# --- The cache ----------------------------------------------------------------------------------------------


def _bring_it_message(entry: ZooEntry, dest: Path) -> str:
    if entry.export:
        how = f"make it with `{entry.export}` (from {entry.source})"
    else:
        how = "copy the file from a machine that is online"
    return (
        f"{how}, then put it at {dest} (or set EDGESEG_HOME to a folder holding models/{entry.filename}), "
        f"or pass its path to edgeseg.load() / the command line"
    )


class _BadCachedFileError(ZooError):
    """The cached file itself is wrong (digest mismatch, not a model): ``fetch`` may replace it."""


def _replace_advice(entry: ZooEntry, dest: Path) -> str:
    if entry.url:
        return f"run `edgeseg fetch {entry.name}` to delete it and download it again"
    return f"delete it; to bring a good copy, {_bring_it_message(entry, dest)}"


def verify_cached(name_or_url: str) -> Path | None:
    """The cached file, checked against its pinned or recorded sha256; ``None`` if not cached.

    Nothing is written when the digest is pinned or already recorded, so a read-only cache works. A file with
    no digest yet (an entry without a pinned one, placed in the cache by hand) must pass the format check, and
    then has its digest recorded; where the cache is read-only it is used anyway, with a warning that later
    changes to it cannot be detected.

    Raises:
        ZooError: the file does not match its digest or is not a model file of the entry's format, the digest
            record is corrupt, or the cache cannot be read (each naming the path).
    """
    entry = get(name_or_url)
    dest = home() / _relpath(entry)
    if not _is_file(dest):
        return None
    expected, kind = expected_digest(name_or_url)
    try:
        actual = sha256_file(dest)
    except OSError as exc:
        raise _cache_error(dest, "read", exc) from None
    if expected is None:
        problem = _format_problem(dest, entry.format)
        if problem:
            raise _BadCachedFileError(f"{dest}: {problem}; {_replace_advice(entry, dest)}")
        _try_record_digest(entry, actual, dest, "when first found in the cache")
    elif actual != expected:
        raise _BadCachedFileError(
            f"{dest}: corrupt or modified cached file: sha256 {actual} does not match the {kind} {expected}; "
            + _replace_advice(entry, dest)
            + (
                f" (if you replaced it on purpose, remove its line from {home() / DIGESTS_FILE})"
                if kind == "recorded"
                else ""
            )
        )
    return dest


# --- Downloads ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Budget:
    """The size cap and the deadline of one fetch (all its attempts together)."""

    max_bytes: int
    deadline: float
    stop: float  # time.monotonic() at the deadline

    def left(self) -> float:
        return self.stop - time.monotonic()

    def timeout(self, timeout: float) -> float:
        """A socket timeout that also ends at the deadline."""
        return max(min(timeout, self.left()), 0.001)

    def cap(self) -> str:
        return f"{self.max_bytes >> 20} MiB" if self.max_bytes % (1 << 20) == 0 else f"{self.max_bytes} bytes"


def _env_number(name: str, default: float, unit: str) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ZooError(f"{name}={text!r}: expected a positive number of {unit}")
    return value


def _budget(max_bytes: int | None, deadline: float | None) -> _Budget:
    if max_bytes is None:
        max_bytes = int(_env_number(MAX_BYTES_ENV, DEFAULT_MAX_MB, "MiB") * (1 << 20))
    if deadline is None:
        deadline = _env_number(DEADLINE_ENV, DEFAULT_DEADLINE_S, "seconds")
    if not max_bytes > 0:
        raise ZooError(f"max_bytes={max_bytes!r}: expected a positive number of bytes")
    if not (math.isfinite(deadline) and deadline > 0):
        raise ZooError(f"deadline={deadline!r}: expected a positive number of seconds")
    return _Budget(int(max_bytes), float(deadline), time.monotonic() + deadline)


def _deadline_error(entry: ZooEntry, budget: _Budget) -> ZooError:
    return ZooError(
        f"{entry.url}: the download did not finish within the deadline of {budget.deadline:g} s (set with "
        f"deadline= or {DEADLINE_ENV}); what arrived is kept and `edgeseg fetch {entry.name}` resumes it"
    )


def fetch(
    name_or_url: str,
    progress: bool = True,
    *,
    retries: int = 3,
    timeout: float = 30.0,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> Path:
    """Download a named model (or any http(s) URL) into the cache, verified; return its path.

    A cached file that matches its digest is returned at once. A cached file that does not is
    deleted and downloaded again. Downloads resume from a leftover ``.part`` file (only where the
    server's ETag or Last-Modified proves the file unchanged); an interrupted transfer is resumed up to
    ``retries`` times. ``timeout`` bounds each network wait.

    Args:
        max_bytes: the largest file accepted; default ``$EDGESEG_MAX_DOWNLOAD_MB`` MiB, else 2048 MiB.
        deadline: seconds the whole fetch may take, retries included; default ``$EDGESEG_DOWNLOAD_DEADLINE``,
            else 1800. What arrived by then is kept for the next fetch to resume.

    Raises:
        ZooError: unknown name, no download for this entry (with the export instruction), network
            unreachable (with how to bring the file by hand), a digest mismatch or a file that is not a
            model of the entry's format (file deleted), a file over the size cap, the deadline passed, or
            a cache that cannot be written.
    """
    entry = get(name_or_url)
    if entry.bundled:
        return bundled_path(entry)
    dest = home() / _relpath(entry)
    try:
        cached = verify_cached(name_or_url)
    except _BadCachedFileError as exc:  # only the file is wrong: a corrupt digest record must not cost a good file
        if entry.url is None:
            raise
        log.warning("%s; deleting it and downloading again", exc)
        _remove(dest)
        cached = None
    if cached is not None:
        return cached
    if entry.url is None:
        what = f"no official {entry.format.upper()} download exists"
        raise ZooError(f"{entry.name}: not in the cache and {what}; " + _bring_it_message(entry, dest))
    budget = _budget(max_bytes, deadline)  # from here on: the cache check does not count against the deadline
    if entry.size is not None and entry.size > budget.max_bytes:
        raise ZooError(
            f"{entry.name}: the file is {entry.size} bytes, more than the download cap of {budget.cap()} "
            f"(raise it with max_bytes= or {MAX_BYTES_ENV})"
        )
    if os.path.lexists(dest) and not os.path.islink(dest) and not _is_file(dest):
        raise ZooError(f"{dest}: exists and is not a file; remove it")
    _mkdir(dest.parent)
    if progress:
        print(f"edgeseg: downloading {entry.url} to {dest}", file=sys.stderr)
    for attempt in range(retries + 1):
        try:
            _download(entry, dest, progress=progress, timeout=timeout, budget=budget)
            break
        except _InterruptedError as exc:
            if budget.left() <= 0:
                raise _deadline_error(entry, budget) from None
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


class _StartOverError(Exception):
    """The ``.part`` file cannot be continued (resume refused, or the file changed upstream)."""


def _download(entry: ZooEntry, dest: Path, progress: bool, timeout: float, budget: _Budget) -> None:
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")  # validators of the response the .part came from
    try:
        _transfer(entry, dest, part, meta, progress, timeout, budget, resume=True)
    except _StartOverError as exc:
        log.warning("%s; starting over", exc)
        _remove(part)
        _remove(meta)
        _transfer(entry, dest, part, meta, progress, timeout, budget, resume=False)


def _resume_state(entry: ZooEntry, part: Path, meta: Path) -> tuple[int, dict[str, Any]]:
    """How many bytes of ``part`` may be resumed and the saved validators; 0 after clearing what may not."""
    try:
        st = os.lstat(part)
    except FileNotFoundError:
        _remove(meta)
        return 0, {}
    except OSError as exc:
        raise _cache_error(part, "read", exc) from None
    if not stat.S_ISREG(st.st_mode):
        log.warning("%s is not a regular file (a symbolic link?): removing it, never writing through it", part)
        _remove(part)
        _remove(meta)
        return 0, {}
    saved: dict[str, Any] = {}
    try:
        if stat.S_ISREG(os.lstat(meta).st_mode):
            loaded = json.loads(meta.read_text(encoding="utf-8"))
            saved = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    if not st.st_size or saved.get("url") != entry.url or not _if_range(saved):
        if st.st_size:
            log.warning("%s: no ETag or Last-Modified was saved with it, so it cannot be resumed safely", part)
        _remove(part)
        _remove(meta)
        return 0, {}
    return st.st_size, saved


def _if_range(validators: dict[str, Any]) -> str | None:
    """The If-Range value: a strong ETag, else Last-Modified (weak ETags may not be used with If-Range)."""
    etag, modified = validators.get("etag"), validators.get("last_modified")
    if isinstance(etag, str) and etag and not etag.startswith("W/"):
        return etag
    return modified if isinstance(modified, str) and modified else None


def _open_part(part: Path, append: bool) -> BinaryIO:
    """Open ``part`` for writing without following a link: created afresh (``O_EXCL``) or appended to."""
    flags = os.O_WRONLY | _NOFOLLOW | getattr(os, "O_BINARY", 0)
    flags |= os.O_APPEND if append else os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(part, flags, 0o644)
    except OSError as exc:
        raise _cache_error(part, "write", exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ZooError(f"{part}: not a regular file; remove it")
    return os.fdopen(fd, "ab" if append else "wb")


def _hash_part(part: Path, offset: int, digest: Any) -> None:
    """Feed the ``offset`` bytes already in ``part`` to ``digest`` (read without following a link)."""
    try:
        fd = os.open(part, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _StartOverError(f"{part}: cannot be read back ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        seen = 0
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            seen += len(chunk)
    if seen != offset:
        raise _StartOverError(f"{part}: changed while it was being resumed")


def _set_read_timeout(resp: Any, seconds: float) -> None:
    """Make the next socket read give up at the deadline (best effort: http.client keeps the socket private)."""
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(seconds)


def _transfer(
    entry: ZooEntry, dest: Path, part: Path, meta: Path, progress: bool, timeout: float, budget: _Budget, resume: bool
) -> None:
    url = entry.url
    assert url is not None
    offset, saved = _resume_state(entry, part, meta) if resume else (0, {})
    headers = {"User-Agent": "edgeseg", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = _if_range(saved) or ""  # the server sends the whole file if it changed
    if budget.left() <= 0:
        raise _deadline_error(entry, budget)
    try:
        resp = urlopen(Request(url, headers=headers), timeout=budget.timeout(timeout))
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:  # the .part is no prefix of this file (or is all of it)
            raise _StartOverError(f"{url}: server refused to resume at byte {offset}") from None
        raise ZooError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        if budget.left() <= 0:
            raise _deadline_error(entry, budget) from None
        reason = getattr(exc, "reason", exc)
        raise ZooError(
            f"cannot download {entry.name} from {url}: {reason}. If this machine is offline, "
            + _bring_it_message(entry, dest)
        ) from None
    with resp:
        length = resp.headers.get("Content-Length")
        remaining = int(length) if length is not None and length.strip().isdigit() else None
        chunked = bool(getattr(resp, "chunked", False))  # chunked framing shows a cut even without a length
        etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        if offset and resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                raise _StartOverError(f"{url}: the server resumed at byte {start}, not {offset}")
            if saved.get("etag") and etag and etag != saved["etag"]:  # a server that ignores If-Range
                raise _StartOverError(f"{url}: the file changed upstream (ETag {saved['etag']} is now {etag})")
            if saved.get("total") is not None and total is not None and total != saved["total"]:
                raise _StartOverError(f"{url}: the file changed upstream ({saved['total']} bytes, now {total})")
            if total is None and remaining is not None:
                total = offset + remaining
            elif total is not None and remaining is not None and offset + remaining != total:
                raise _StartOverError(f"{url}: the server sent a range that does not reach the end of the file")
            append = True
        else:
            if resp.status == 206:
                raise ZooError(f"{url}: the server sent part of the file (HTTP 206) to a request for all of it")
            if offset:
                log.warning("%s: the file changed upstream or the server ignored the resume request; "
                            "downloading from the start", url)  # fmt: skip
            offset, total, append = 0, remaining, False
        if total is not None and total > budget.max_bytes:
            raise ZooError(
                f"{url}: the server announces {total} bytes, more than the download cap of {budget.cap()} "
                f"(raise it with max_bytes= or {MAX_BYTES_ENV} if the file really is that large); nothing was "
                "downloaded"
            )
        digest = hashlib.sha256()
        if append:
            _hash_part(part, offset, digest)
        else:
            _remove(part)
            _remove(meta)
            record = {"url": url, "etag": etag, "last_modified": modified, "total": total}
            try:
                write_atomic(meta, json.dumps(record).encode("utf-8"))
            except OSError as exc:
                raise _cache_error(meta, "write", exc) from None
        received, over = offset, False
        from tqdm import tqdm

        with _open_part(part, append) as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=entry.filename, disable=not progress, leave=False,
        ) as bar:  # fmt: skip
            while True:
                if budget.left() <= 0:
                    _sync(f, part)
                    raise _deadline_error(entry, budget)
                _set_read_timeout(resp, budget.timeout(timeout))
                try:
                    chunk = resp.read1(CHUNK)  # one socket read: a trickle cannot hide inside a long read
                except (OSError, http.client.HTTPException) as exc:
                    _sync(f, part)
                    if budget.left() <= 0:
                        raise _deadline_error(entry, budget) from None
                    raise _InterruptedError(f"{url}: download interrupted after {received} bytes ({exc})") from None
                if not chunk:
                    break
                if received + len(chunk) > budget.max_bytes:
                    over = True
                    break
                try:
                    f.write(chunk)
                except OSError as exc:
                    raise _cache_error(part, "write", exc) from None
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            _sync(f, part)
    if over:
        _remove(part)
        _remove(meta)
        raise ZooError(
            f"{url}: stopped after {received} bytes, more than the download cap of {budget.cap()} (raise it with "
            f"max_bytes= or {MAX_BYTES_ENV} if the file really is that large); the partial download was deleted"
        )
    if total is not None and received < total:
        raise _InterruptedError(f"{url}: connection closed after {received} of {total} bytes")
    _install(entry, dest, part, meta, digest.hexdigest(), received, known_length=total is not None or chunked)


def _sync(f: BinaryIO, part: Path) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    except OSError as exc:
        raise _cache_error(part, "write", exc) from None


def _install(
    entry: ZooEntry, dest: Path, part: Path, meta: Path, actual: str, received: int, known_length: bool
) -> None:
    """Check a complete ``.part`` (digest, size, format) and rename it into place; delete it if it fails."""
    expected, kind = expected_digest(entry.name)
    if expected is not None and actual != expected:
        problem = _format_problem(part, entry.format, thorough=False)
        _remove(part)
        _remove(meta)
        raise ZooError(
            f"{entry.url}: checksum mismatch: sha256 {actual} does not match the {kind} {expected}; "
            "the download was deleted"
            + (f"; what arrived is {problem}" if problem else "")
            + (f" (if the file changed upstream on purpose, remove its line from {home() / DIGESTS_FILE})"
               if kind == "recorded" else "")
        )  # fmt: skip
    if entry.size is not None and received != entry.size:
        _remove(part)
        _remove(meta)
        raise ZooError(f"{entry.url}: got {received} bytes, expected {entry.size}; the download was deleted")
    if expected is None:
        problem = _format_problem(part, entry.format)
        if problem:
            _remove(part)
            _remove(meta)
            raise ZooError(f"{entry.url}: {problem}; the download was deleted and no digest was recorded")
        if not known_length:
            log.warning(
                "%s: the server sent no length and no digest is pinned: the download was checked only as a "
                "well-formed %s file", entry.url, entry.format.upper(),
            )  # fmt: skip
    try:
        os.replace(part, dest)  # replaces a link at dest, never writes through it
    except OSError as exc:
        raise _cache_error(dest, "install the download as", exc) from None
    _remove(meta)
    _fsync_dir(dest.parent)
    if expected is None:
        _try_record_digest(entry, actual, dest, "at first download")


def _content_range(content_range: str | None) -> tuple[int | None, int | None]:
    """Start and total length from ``Content-Range: bytes START-END/TOTAL`` (total ``None`` for ``*``)."""
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", content_range or "")
    if not m:
        return None, None
    return int(m.group(1)), None if m.group(2) == "*" else int(m.group(2))


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
        "cached": str(path) if _is_file(path) else None,
        "download": entry.url or f"none official; `{entry.export}`, then put the file at {path}",
        "description": entry.description,
        "bundled": False,
    }
