"""Shared by every test."""

from __future__ import annotations

import signal

import pytest

# A shell without job control starts background commands (`.ci/run &`, `nohup ... &`) with
# SIGINT ignored, and children inherit that: Python then never raises KeyboardInterrupt and
# `_thread.interrupt_main()` does nothing, so the Ctrl-C tests would see a run that cannot be
# interrupted. Give this process (and through exec, the runs it starts) the default again.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _no_gh_login(monkeypatch: pytest.MonkeyPatch,
                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """A developer's own `gh auth login` (or GH_TOKEN) must not stand in for GITHUB_TOKEN in a
    test, nor send a test's requests to GitHub: gh reads its login from an empty directory."""
    empty = tmp_path_factory.getbasetemp() / "no-gh-config"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("GH_CONFIG_DIR", str(empty))
    for name in ("GH_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
