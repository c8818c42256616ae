"""Unit tests touch no network, no daemon and no git remote other than file://."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from longcert import container, source


@pytest.fixture(autouse=True)
def _no_network_no_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_connect(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"unit test tried to connect to {address!r}")

    def refuse_daemon() -> None:
        raise AssertionError("unit test tried to reach the Docker engine")

    real_normalize = source.normalize_remote

    def file_only(remote: str) -> str:
        url = real_normalize(remote)
        if not url.startswith("file://"):
            raise AssertionError(f"unit test used a non-file:// git remote {url!r}")
        return url

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    monkeypatch.setattr(container, "connect", refuse_daemon)
    monkeypatch.setattr(source, "normalize_remote", file_only)
