"""A stand-in for Go's download site (https://go.dev/dl/) on 127.0.0.1, for tests.

It serves ``/dl/?mode=json&include=all`` (the release index, in Go's own format) and the
archives it lists. The archives are made here: a ``go/`` tree whose ``bin/go`` is a small shell
script answering ``go version`` and ``go env VAR`` like the release it stands for, which is
enough to build and probe a builder image without any real old Go. Each release can be listed
with its true sha256, a wrong one, or not at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.loopback import get_handler, serving

GO_SCRIPT = """#!/bin/sh
# stand-in go {version}: answers what longcert's image probe asks
case "$1" in
  version) echo "go version go{version} linux/amd64" ;;
  env) for v in "$@"; do case "$v" in
         GOROOT) echo /usr/local/go ;; GOPATH) echo /go ;; GOOS) echo linux ;;
         GOARCH) echo amd64 ;; esac; done ;;
  *) echo "stand-in go {version}: $1 is not implemented" >&2; exit 2 ;;
esac
"""


def go_archive(version: str) -> bytes:
    """go<version>.linux-amd64.tar.gz as Go ships it: everything under go/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text, mode in (
            ("go/VERSION", f"go{version}\ntime 2020-02-12T00:00:00Z\n", 0o644),
            ("go/bin/go", GO_SCRIPT.format(version=version), 0o755),
            ("go/src/runtime/extern.go", "package runtime\n", 0o644),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1581465600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class DownloadSite:
    base_url: str  # http://127.0.0.1:PORT/dl/
    files: dict[str, bytes] = field(default_factory=dict)
    index: list[dict[str, object]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def add(self, version: str, *, listed_sha256: str | None = None) -> str:
        """Serve Go ``version``; list it with ``listed_sha256`` (default: the true one)."""
        data = go_archive(version)
        name = f"go{version}.linux-amd64.tar.gz"
        self.files[name] = data
        digest = hashlib.sha256(data).hexdigest()
        self.index.append({
            "version": f"go{version}",
            "stable": True,
            "files": [
                {"filename": f"go{version}.darwin-amd64.tar.gz", "os": "darwin",
                 "arch": "amd64", "version": f"go{version}", "sha256": "0" * 64,
                 "size": 1, "kind": "archive"},
                {"filename": name, "os": "linux", "arch": "amd64", "version": f"go{version}",
                 "sha256": listed_sha256 or digest, "size": len(data), "kind": "archive"},
            ],
        })
        return digest


@contextmanager
def serve() -> Iterator[DownloadSite]:
    """A DownloadSite answering on a free loopback port until the block ends."""
    site = DownloadSite("")

    def answer(path_and_query: str, _: object) -> bytes | None:
        site.requests.append(path_and_query)
        path, _, query = path_and_query.partition("?")
        if path == "/dl/" and query == "mode=json&include=all":
            return json.dumps(site.index).encode()
        return site.files.get(path[4:]) if path.startswith("/dl/") else None

    with serving(get_handler(answer)) as url:
        site.base_url = url + "dl/"
        yield site
