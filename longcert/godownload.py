"""Go release archives from Go's download site (or a mirror of it), checked by sha256.

The site publishes an index of every release, ``<base>?mode=json&include=all``: a JSON list of
``{"version": "go1.12.17", "files": [{"filename", "os", "arch", "kind", "sha256", "size"}]}``.
The archive is ``<base><filename>``. Nothing is kept unless its sha256 is the one the index gives
for that exact file; the index is read over https (plain http only to loopback), and a redirect
may not downgrade to plain http.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longcert.errors import ImageError
from longcert.settings import is_local_host
from longcert.versions import go_key, is_go_version

DEFAULT_URL = "https://go.dev/dl/"
INDEX_QUERY = "?mode=json&include=all"
TIMEOUT = 30
# Asking whether the site answers at all, before preferring it over an offline fallback: a site
# that is unreachable must cost seconds, not the full TIMEOUT.
PROBE_TIMEOUT = 5
MAX_INDEX_BYTES = 64 << 20
MAX_ARCHIVE_BYTES = 1 << 30

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class GoArchive:
    """One file of the index: the archive of a Go release for one platform."""

    version: str  # "1.12.17"
    filename: str  # "go1.12.17.linux-amd64.tar.gz"
    sha256: str
    size: int
    url: str


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects (go.dev sends archives to dl.google.com), never from https to http."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        new = urllib.parse.urlparse(newurl)
        old = urllib.parse.urlparse(req.full_url)
        if new.scheme not in ("http", "https") or (
            old.scheme == "https" and new.scheme == "http" and not is_local_host(new.netloc)
        ):
            raise ImageError(f"{req.full_url} redirects to {newurl}: refused (not https)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url(url: str) -> None:
    """ImageError unless ``url`` is https (or plain http to loopback): for URLs a server
    reply names, such as a wheel's on the package index."""
    parsed = urllib.parse.urlparse(url)
    if not parsed.netloc or not (
        parsed.scheme == "https" or (parsed.scheme == "http" and is_local_host(parsed.netloc))
    ):
        raise ImageError(f"refusing to download {url}: not https")


def open_url(
    url: str, headers: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> Any:
    """GET ``url`` following redirects but never down to plain http; ImageError on failure."""
    opener = urllib.request.build_opener(_NoDowngrade())
    request = urllib.request.Request(url, headers={"User-Agent": "longcert", **(headers or {})})
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise ImageError(f"{url} answered HTTP {err.code}") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageError(
            f"the download site does not answer at {url}: {reason}",
            "check the URL (--go-download-url, --index-url) and the network",
        ) from exc


def read_json(
    url: str, what: str, headers: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> Any:
    """GET ``url`` (:func:`open_url`) and parse it as JSON of at most MAX_INDEX_BYTES;
    ImageError naming ``what`` otherwise."""
    try:
        with open_url(url, headers, timeout) as reply:
            data = reply.read(MAX_INDEX_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:  # a reply broken off or too slow
        raise ImageError(f"{what} at {url} could not be read: {exc}") from exc
    if len(data) > MAX_INDEX_BYTES:
        raise ImageError(f"{what} at {url} is larger than {MAX_INDEX_BYTES} bytes")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{what} at {url} is not JSON") from exc


def read_index(base_url: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """The download site's release index (every release, every file)."""
    url = base_url + INDEX_QUERY
    index = read_json(url, "the Go release index", timeout=timeout)
    if not isinstance(index, list):
        raise ImageError(f"the Go release index at {url} is not a list of releases")
    return [entry for entry in index if isinstance(entry, dict)]


def nearest_releases(index: list[dict[str, Any]], version: str, count: int = 3) -> list[str]:
    """The index's releases closest to ``version`` (same minor first), for an error message."""
    names = [str(e.get("version", "")).removeprefix("go") for e in index if isinstance(e, dict)]
    known = [name for name in names if is_go_version(name)]
    wanted = go_key(version)

    def distance(candidate: str) -> tuple[int, int, int]:
        key = go_key(candidate)
        return (abs(key[0] - wanted[0]), abs(key[1] - wanted[1]), abs(key[2] - wanted[2]))

    return sorted(set(known), key=distance)[:count]


def find_archive(
    index: list[dict[str, Any]], version: str, arch: str, base_url: str
) -> GoArchive:
    """The linux ``arch`` archive of Go ``version`` in ``index`` (pure); ImageError naming the
    nearest releases when the version is unknown, or when the index has no such file."""
    entry = next(
        (e for e in index if isinstance(e, dict) and e.get("version") == f"go{version}"), None
    )
    if entry is None:
        near = ", ".join(nearest_releases(index, version)) or "none"
        raise ImageError(
            f"Go {version} is not a Go release listed at {base_url}",
            f"nearest releases: {near}",
        )
    expected = f"go{version}.linux-{arch}.tar.gz"
    for item in entry.get("files") or []:
        if not isinstance(item, dict) or item.get("filename") != expected:
            continue
        digest = str(item.get("sha256", "")).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ImageError(f"the Go release index gives no valid sha256 for {expected}")
        size = item.get("size")
        return GoArchive(
            version,
            expected,
            digest,
            int(size) if isinstance(size, int) else 0,
            base_url + expected,
        )
    raise ImageError(
        f"the Go release index at {base_url} lists Go {version} but no {expected}",
        "nothing was downloaded; the archive must be listed with its sha256",
    )


def download(
    archive: GoArchive, dest_dir: Path, progress: ProgressFn,
    listed_by: str = "the release index",
) -> Path:
    """Download ``archive`` into ``dest_dir`` and check its sha256 (and size) against what
    ``listed_by`` lists; ImageError (and the partial file removed) on any mismatch."""
    dest = dest_dir / archive.filename
    digest = hashlib.sha256()
    total = 0
    last = 0.0
    try:
        with open_url(archive.url) as reply, dest.open("wb") as out:
            length = int(reply.headers.get("Content-Length") or archive.size or 0)
            progress(f"downloading {archive.url} ({length / 2**20:.1f} MiB)")
            for block in iter(lambda: reply.read(1 << 20), b""):
                total += len(block)
                if total > MAX_ARCHIVE_BYTES:
                    raise ImageError(f"{archive.url} is larger than {MAX_ARCHIVE_BYTES} bytes")
                digest.update(block)
                out.write(block)
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    share = f" {100 * total // length}%" if length else ""
                    progress(f"  {archive.filename}: {total / 2**20:.1f} MiB{share}")
        if digest.hexdigest() != archive.sha256:
            raise ImageError(
                f"{archive.filename} from {archive.url} has sha256 {digest.hexdigest()}, but "
                f"{listed_by} says {archive.sha256}",
                "the download was corrupted or tampered with; nothing was kept",
            )
        if archive.size and total != archive.size:
            raise ImageError(
                f"{archive.filename} is {total} bytes, {listed_by} says {archive.size}"
            )
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    progress(f"  {archive.filename}: sha256 {archive.sha256} matches {listed_by}")
    return dest


def fetch_go(
    version: str, arch: str, base_url: str, dest_dir: Path, progress: ProgressFn,
    index: list[dict[str, Any]] | None = None,
) -> tuple[Path, GoArchive]:
    """Download and check Go ``version``'s linux archive; (path, what the index said). The
    release index is read unless ``index`` (already read from ``base_url``) is given."""
    if index is None:
        progress(f"reading the Go release index at {base_url}")
        index = read_index(base_url)
    archive = find_archive(index, version, arch, base_url)
    return download(archive, dest_dir, progress), archive
