"""Go's download index: finding a release's archive and its sha256 (pure; the HTTP side is
tested against a loopback download site in tests/integration/test_go_download.py)."""

from __future__ import annotations

import pytest

from longcert import godownload, settings
from longcert.errors import ConfigError, ImageError

BASE = "https://go.dev/dl/"
INDEX = [
    {"version": "go1.12.17", "files": [
        {"filename": "go1.12.17.linux-amd64.tar.gz", "os": "linux", "arch": "amd64",
         "sha256": "A" * 64, "size": 10, "kind": "archive"},
        {"filename": "go1.12.17.linux-arm64.tar.gz", "os": "linux", "arch": "arm64",
         "sha256": "not-a-digest", "size": 10, "kind": "archive"}]},
    {"version": "go1.12.16", "files": []},
    {"version": "go1.11.13", "files": []},
    {"version": "go1.20rc1", "files": []},
    "garbage",
]


def test_find_archive_takes_the_exact_file_and_its_sha256() -> None:
    found = godownload.find_archive(INDEX, "1.12.17", "amd64", BASE)  # type: ignore[arg-type]
    assert found.filename == "go1.12.17.linux-amd64.tar.gz"
    assert found.sha256 == "a" * 64
    assert found.url == "https://go.dev/dl/go1.12.17.linux-amd64.tar.gz"


@pytest.mark.parametrize(("version", "arch", "message"), [
    ("1.12.18", "amd64", "nearest releases: 1.12.17, 1.12.16, 1.11.13"),
    ("1.12.17", "arm64", "no valid sha256"),
    ("1.12.16", "amd64", "lists Go 1.12.16 but no go1.12.16.linux-amd64.tar.gz"),
])
def test_find_archive_refusals(version: str, arch: str, message: str) -> None:
    with pytest.raises(ImageError) as caught:
        godownload.find_archive(INDEX, version, arch, BASE)  # type: ignore[arg-type]
    assert message in str(caught.value)


@pytest.mark.parametrize(("url", "ok"), [
    ("https://go.dev/dl/", "https://go.dev/dl/"),
    ("https://mirror.example/golang", "https://mirror.example/golang/"),
    ("http://127.0.0.1:8080/dl/", "http://127.0.0.1:8080/dl/"),
    ("http://mirror.example/dl/", None),
    ("https://user:secret@mirror.example/dl/", None),
    ("file:///srv/go", None),
    ("https://go.dev/dl/?mode=json", None),
])
def test_download_url_setting(url: str, ok: str | None) -> None:
    if ok:
        assert settings.parse_download_url(url) == ok
    else:
        with pytest.raises(ConfigError):
            settings.parse_download_url(url)
