"""Verification scenarios run at once: the same report, log and errors as one after the other.

A fake container stands in for the engine: it "runs" kubeadm by writing a PKI with the
validity the scenario's config asks for into the directory mounted at /etc/kubernetes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from longcert import container, verify
from longcert.errors import EngineError
from longcert.versions import KubeVersion
from tests.standin_build import executable_header
from tests.unit.test_verify import write_pki

TAG = "v1.33.7"
VERSION = KubeVersion.parse(TAG)


@dataclass
class Engine:
    """What the fake containers share: concurrency seen, failures to inject, boxes made."""

    fail: set[tuple[str, str]] = field(default_factory=set)  # (scenario, command) -> exit 1
    raise_in: dict[tuple[str, str], BaseException] = field(default_factory=dict)
    running: int = 0
    most: int = 0
    boxes: list[FakeBox] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    never_killed: bool = False  # a box waited for its kill in vain


class FakeBox:
    engine: Engine

    def __init__(self, client: Any, image: str, *, mounts: list[container.BindMount],
                 log_path: Path | None = None, **_: Any) -> None:
        self.mounts = {m.target: Path(m.source) for m in mounts}
        self.log_path = log_path
        self.killed = threading.Event()
        self.exited = False
        self.ran = False  # ran a command (a box opened after the stop runs none)
        self.engine.boxes.append(self)

    def __enter__(self) -> FakeBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited = True

    def kill(self) -> None:
        self.killed.set()

    def scenario(self) -> str:
        config = (self.mounts[verify.CONFIG_MOUNT] / "kubeadm.yaml").read_text()
        return "config-8760h-ecdsa" if "certificateValidityPeriod" in config else "init"

    def capture(self, argv: list[str], *, on_line: Any = None, **_: Any) -> tuple[int, str]:
        words = " ".join(argv[1:])
        self.ran = True
        with self.engine.lock:
            self.engine.running += 1
            self.engine.most = max(self.engine.most, self.engine.running)
        try:
            code, output = self._kubeadm(words)
        finally:
            with self.engine.lock:
                self.engine.running -= 1
        if self.log_path is not None:
            with self.log_path.open("a") as log:
                log.write(f"$ {words}\n{output}\n")
        for line in output.splitlines():
            if on_line is not None:
                on_line(line)
        return code, output

    def capture_together(self, commands: list[list[str]], *, on_line: Any = None,
                         **_: Any) -> list[tuple[int, str]]:
        return [self.capture(argv, on_line=on_line) for argv in commands]

    def _kubeadm(self, words: str) -> tuple[int, str]:
        if words.startswith("version"):
            return 0, json.dumps({"clientVersion": {"gitVersion": TAG}})
        if words.startswith("config print"):
            return 0, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
        scenario = self.scenario()
        command = " ".join(words.split()[:3])
        error = self.engine.raise_in.get((scenario, command))
        if error is not None:
            # killed: the engine says so
            if isinstance(error, EngineError) and not self.killed.wait(10):
                self.engine.never_killed = True
                raise AssertionError("never killed")
            raise error
        if (scenario, command) in self.engine.fail:
            return 1, f"error: {command} failed in {scenario}"
        if command == "init phase certs":
            time.sleep(0.2)  # long enough for the scenarios to overlap
            stored = scenario == "config-8760h-ecdsa"
            write_pki(self.mounts[verify.KUBERNETES_DIR], VERSION, 365 if stored else 3650,
                      3650)
        elif command == "certs renew all":
            write_pki(self.mounts[verify.KUBERNETES_DIR], VERSION, 365 if scenario != "init"
                      else 3650, 3650)
        return 0, f"[{scenario}] {command}: done"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    shared = Engine()
    FakeBox.engine = shared
    monkeypatch.setattr(container, "connect", lambda: object())
    monkeypatch.setattr(container, "BuildContainer", FakeBox)
    yield shared


def run(tmp_path: Path, cores: int, monkeypatch: pytest.MonkeyPatch,
        name: str) -> tuple[verify.VerifyReport, str, list[str]]:
    monkeypatch.setattr(verify.os, "cpu_count", lambda: cores)
    binary = tmp_path / "kubeadm"
    binary.write_bytes(executable_header("linux/amd64") + bytes(64))
    log = tmp_path / f"{name}.log"
    lines: list[str] = []
    report = verify.verify_binary(binary, VERSION, 10, 10, image="fake", log_path=log,
                                  on_line=lines.append)
    return report, log.read_text(), lines


def essence(report: verify.VerifyReport) -> tuple[object, ...]:
    """The report without what differs between any two runs (serials, times)."""
    checks = [(c.file, c.stage, c.kind, c.expected_days, round(c.days), c.problems)
              for c in report.checks]
    return report.reported_version, report.problems, tuple(checks), report.config_api


def test_scenarios_run_at_once_and_report_as_one_after_the_other(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, one_log, one_lines = run(tmp_path, 1, monkeypatch, "one")
    assert engine.most == 1 and len(engine.boxes) == 1
    engine.most, engine.boxes = 0, []
    both, both_log, both_lines = run(tmp_path, 2, monkeypatch, "both")
    assert engine.most == 2 and len(engine.boxes) == 2  # a container per scenario
    assert all(box.exited for box in engine.boxes)
    assert one.passed and both.passed
    assert [c.stage for c in both.checks].count("config-8760h-ecdsa-renew") == 11
    assert essence(both) == essence(one)
    assert both_log == one_log  # scenario order, whatever finished first
    assert both_lines == one_lines
    assert both_log.index("[init] init phase certs") < both_log.index("[config-8760h-ecdsa]")


def test_a_failure_gives_the_same_problems_either_way(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the first scenario fails: as one after the other, the second one renews nothing
    engine.fail = {("init", "init phase kubeconfig")}
    one, _, _ = run(tmp_path, 1, monkeypatch, "one")
    both, _, _ = run(tmp_path, 2, monkeypatch, "both")
    assert not one.passed
    assert essence(both) == essence(one)
    assert not any(c.stage.endswith("-renew") for c in both.checks)
    assert one.problems[0].startswith("`kubeadm init phase kubeconfig all` failed (exit 1)")
    # the second one fails: the first one's renewal stands
    engine.fail = {("config-8760h-ecdsa", "certs renew all")}
    one, _, _ = run(tmp_path, 1, monkeypatch, "one")
    both, _, _ = run(tmp_path, 2, monkeypatch, "both")
    assert essence(both) == essence(one)
    assert any(c.stage == "init-renew" for c in both.checks)
    assert one.problems == ("`kubeadm certs renew all` failed (exit 1): "
                            "error: certs renew all failed in config-8760h-ecdsa",)


def test_the_first_error_in_order_is_raised_and_every_container_removed(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # scenario 0 is interrupted (Ctrl-C) while scenario 1 still runs: scenario 1's container
    # is removed at once (what runs in it ends with the engine's error), then Ctrl-C goes on
    engine.raise_in = {("init", "init phase certs"): KeyboardInterrupt(),
                       ("config-8760h-ecdsa", "init phase certs"): EngineError("container removed")}
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, 2, monkeypatch, "both")
    # every container is gone; each one that was running something was removed (killed)
    # rather than waited for
    assert not engine.never_killed
    assert all(box.exited for box in engine.boxes)
    assert all(box.killed.is_set() for box in engine.boxes if box.ran)


def test_workers_follow_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify.os, "cpu_count", lambda: None)
    assert verify.scenario_workers(2) == 1
    monkeypatch.setattr(verify.os, "cpu_count", lambda: 8)
    assert verify.scenario_workers(2) == 2 and verify.scenario_workers(0) == 1
