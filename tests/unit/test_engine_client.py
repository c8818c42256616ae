"""One engine client per process and address: no API-version round trip per stage."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from longcert import container
from longcert.errors import EngineError

REAL_CONNECT = container.connect  # the autouse guard replaces it during each test


class FakeClient:
    def __init__(self) -> None:
        self.pings = 0
        self.down = False

    def ping(self) -> bool:
        self.pings += 1
        if self.down:
            raise requests.exceptions.ConnectionError("connection refused")
        return True


def test_the_client_is_made_once_and_pinged_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeClient] = []

    def from_env(**_: Any) -> FakeClient:
        made.append(FakeClient())
        return made[-1]

    monkeypatch.setattr(container, "_clients", {})
    monkeypatch.setattr(container.docker, "from_env", from_env)
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/a.sock")
    first = REAL_CONNECT()
    assert REAL_CONNECT() is first and len(made) == 1 and made[0].pings == 2
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/b.sock")  # another engine: another client
    assert REAL_CONNECT() is not first and len(made) == 2
    made[1].down = True  # the engine went away: said as before, and not kept
    with pytest.raises(EngineError, match=r"no Docker engine answers at unix:///run/b\.sock"):
        REAL_CONNECT()
    made[1].down = False
    assert REAL_CONNECT() is made[2]
