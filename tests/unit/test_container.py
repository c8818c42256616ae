"""BuildContainer's boundary, against a small fake client (the real path is in integration)."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from longcert import container
from longcert.errors import BuildError, EngineError, ImageError


class FakeContainer:
    def __init__(self, client: FakeClient, fail_start: bool) -> None:
        self.client = client
        self.id = "c1"
        self.fail_start = fail_start

    def start(self) -> None:
        if self.fail_start:
            raise docker.errors.APIError("cannot start")
        self.client.events.append("start")

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.client.events.append(f"remove force={force}")


class FakeAPI:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def exec_create(self, cid: str, cmd: list[str], **kwargs: Any) -> dict[str, str]:
        assert isinstance(cmd, list)  # argument lists, never shell strings
        self.client.events.append(f"exec {cmd} user={kwargs.get('user')}")
        return {"Id": "e1"}

    def exec_start(self, eid: str, stream: bool) -> Any:
        yield b"line one\nline "
        yield b"two\n"
        if self.client.interrupt:
            raise KeyboardInterrupt

    def exec_inspect(self, eid: str) -> dict[str, int]:
        return {"ExitCode": self.client.exit_code}


class FakeContainers:
    def __init__(self, client: FakeClient) -> None:
        self.client = client

    def create(self, image: str, **kwargs: Any) -> FakeContainer:
        if image == "missing:1":
            raise docker.errors.ImageNotFound("no such image")
        self.client.created = kwargs
        return FakeContainer(self.client, self.client.fail_start)


class FakeClient:
    def __init__(self, *, fail_start: bool = False, exit_code: int = 0,
                 interrupt: bool = False) -> None:
        self.events: list[str] = []
        self.fail_start = fail_start
        self.exit_code = exit_code
        self.interrupt = interrupt
        self.created: dict[str, Any] = {}
        self.api = FakeAPI(self)
        self.containers = FakeContainers(self)


def box(client: FakeClient, tmp_path: Path, image: str = "img:1") -> container.BuildContainer:
    return container.BuildContainer(client, image, log_path=tmp_path / "build.log",  # type: ignore[arg-type]
                                    labels={"org.longcert.purpose": "test"})


def test_runs_and_removes(tmp_path: Path) -> None:
    client = FakeClient()
    with box(client, tmp_path) as b:
        assert b.run(["make", "all"], user="1000:1000") == 0
    assert client.events == ["start", "exec ['make', 'all'] user=1000:1000", "remove force=True"]
    assert client.created["network_mode"] == "none"
    assert client.created["labels"]["org.longcert"] == "1"
    assert (tmp_path / "build.log").read_text() == "$ make all\nline one\nline two\n"


def test_failed_command_shows_the_tail(tmp_path: Path) -> None:
    client = FakeClient(exit_code=2)
    with pytest.raises(BuildError, match="line two"), box(client, tmp_path) as b:
        b.check(["make"], what="make")
    assert client.events[-1] == "remove force=True"


def test_failed_start_still_removes(tmp_path: Path) -> None:
    client = FakeClient(fail_start=True)
    with pytest.raises(EngineError, match="cannot start a container"), box(client, tmp_path):
        pass
    assert client.events == ["remove force=True"]


def test_ctrl_c_removes(tmp_path: Path) -> None:
    client = FakeClient(interrupt=True)
    with pytest.raises(KeyboardInterrupt), box(client, tmp_path) as b:
        b.run(["make"])
    assert client.events[-1] == "remove force=True"


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="missing:1 is not present"):
        box(FakeClient(), tmp_path, "missing:1").__enter__()


@pytest.mark.parametrize(("reference", "split"), [
    ("golang:1.24.11", ("golang", "1.24.11")),
    ("golang", ("golang", "latest")),
    ("mirror.local:5000/golang", ("mirror.local:5000/golang", "latest")),
    ("mirror.local:5000/golang:1.9.3", ("mirror.local:5000/golang", "1.9.3")),
    ("golang@sha256:" + "a" * 64, ("golang", "sha256:" + "a" * 64)),
    ("127.0.0.1:5000/x/golang@sha256:" + "b" * 64,
     ("127.0.0.1:5000/x/golang", "sha256:" + "b" * 64)),
])
def test_image_references_by_tag_and_by_digest(reference: str, split: tuple[str, str]) -> None:
    assert container.split_reference(reference) == split


class TogetherAPI(FakeAPI):
    """Each exec prints its own lines; none ends before all have started (a barrier), and
    the second ends first."""

    def __init__(self, client: FakeClient, count: int) -> None:
        super().__init__(client)
        self.barrier = threading.Barrier(count, timeout=10)
        self.second_done = threading.Event()

    def exec_create(self, cid: str, cmd: list[str], **kwargs: Any) -> dict[str, str]:
        return {"Id": cmd[0]}

    def exec_start(self, eid: str, stream: bool) -> Any:
        self.barrier.wait()  # raises BrokenBarrierError if the execs ran one after the other
        if eid == "first":
            assert self.second_done.wait(10)
        yield f"{eid} says one\n{eid} says two\n".encode()
        if eid == "second":
            self.second_done.set()

    def exec_inspect(self, eid: str) -> dict[str, int]:
        return {"ExitCode": 3 if eid == "second" else 0}


def test_commands_together_run_at_once_and_log_in_order(tmp_path: Path) -> None:
    client = FakeClient()
    client.api = TogetherAPI(client, 2)
    lines: list[str] = []
    with box(client, tmp_path) as b:
        results = b.capture_together([["first", "-x"], ["second"]], on_line=lines.append)
    assert results == [(0, "first says one\nfirst says two"),
                       (3, "second says one\nsecond says two")]
    assert lines == ["first says one", "first says two", "second says one", "second says two"]
    assert (tmp_path / "build.log").read_text() == (
        "$ first -x\nfirst says one\nfirst says two\n$ second\nsecond says one\nsecond says two\n")


def test_cache_volumes_are_the_configured_names_and_their_remote_suffixes() -> None:
    bases = ["longcert-go-build", "longcert-go-mod"]
    assert container.is_cache_volume("longcert-go-build", bases)
    assert container.is_cache_volume("longcert-go-mod-0123456789ab", bases)
    for other in ("longcert-go-build-0123456789", "longcert-go-build-0123456789abX",
                  "longcert-go-build-0123456789AB", "my-longcert-go-build", "pgdata",
                  "longcert-fresh-1-2-build"):
        assert not container.is_cache_volume(other, bases), other


class FakeVolume:
    def __init__(self, name: str, error: Exception | None, gone: list[str]) -> None:
        self.name, self.error, self.gone = name, error, gone

    def remove(self) -> None:
        if self.error is not None:
            raise self.error
        self.gone.append(self.name)


def test_remove_cache_volumes_skips_volumes_in_use_and_others() -> None:
    gone: list[str] = []
    in_use = docker.errors.APIError("volume is in use", response=type(
        "R", (), {"status_code": 409, "reason": "Conflict"})())
    volumes = [FakeVolume("longcert-go-build-aaaaaaaaaaaa", None, gone),
               FakeVolume("longcert-go-mod-aaaaaaaaaaaa", in_use, gone),
               FakeVolume("longcert-go-build-bbbbbbbbbbbb", docker.errors.NotFound("x"), gone),
               FakeVolume("postgres-data", None, gone)]
    client = type("C", (), {"volumes": type("V", (), {"list": lambda self: volumes})()})()
    removed, busy = container.remove_cache_volumes(client, ["longcert-go-build", "longcert-go-mod"])
    assert removed == gone == ["longcert-go-build-aaaaaaaaaaaa"]
    assert busy == ["longcert-go-mod-aaaaaaaaaaaa"]


class StoppableAPI(TogetherAPI):
    """Execs that only end when the container is removed."""

    def exec_start(self, eid: str, stream: bool) -> Any:
        self.barrier.wait()
        if not self.client.removed.wait(10):
            raise AssertionError("the container was never removed")
        raise docker.errors.APIError("container removed")


def test_ctrl_c_while_commands_run_together_removes_the_container(tmp_path: Path) -> None:
    client = FakeClient()
    client.removed = threading.Event()  # type: ignore[attr-defined]
    api = StoppableAPI(client, 3)
    client.api = api

    class Removable(FakeContainer):
        def remove(self, force: bool = False, v: bool = False) -> None:
            super().remove(force, v)
            client.removed.set()  # type: ignore[attr-defined]

    client.containers.create = lambda image, **kw: Removable(client, False)  # type: ignore[method-assign]

    def interrupt() -> None:
        api.barrier.wait()  # both commands are running
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt), box(client, tmp_path) as b:
        b.capture_together([["first"], ["second"]])
    assert "remove force=True" in client.events
