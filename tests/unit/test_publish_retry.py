"""Publishing's retry policy: Retry-After parsing, backoff, and which requests Http tries again.

No network: ``urllib.request.urlopen`` is replaced by a script of answers and failures, and the
policy's sleep by a list that records the waits.
"""

from __future__ import annotations

import dataclasses
import email.message
import http.client
import io
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from longcert import publish, settings
from longcert.errors import ConfigError, NoAnswerError, PublishError
from longcert.publish.http import Retries, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


# ------------------------------------------------------------------ Retry-After


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("0007", 7.0),
        ("99999999999999999999999", 1e9),  # absurd: as good as forever, capped by the policy
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sunday, 01-Mar-26 12:01:00 GMT", 60.0),  # the obsolete RFC 850 form
        ("Sun Mar  1 12:00:05 2026", 5.0),  # asctime
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("Sun, 01 Mar 2026 12:00:10 -0000", 10.0),
    ],
)
def test_retry_after_seconds_and_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "-5",
        "1.5",
        "+3",
        "1e3",
        "soon",
        "١٢",
        "12 seconds",
        "Sun, 99 Foo 2026 12:00:00 GMT",
        "GMT",
        "x" * 500,
        "Sun, 01 Mar 99999 12:00:00 GMT",
        "\x00\x01",
        "0x10",
    ],
)
def test_retry_after_garbage_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_far_future_date_is_bounded() -> None:
    far = format_datetime(datetime(9999, 12, 31, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after(far, now=NOW) == 1e9


# ------------------------------------------------------------------ backoff and budget


def policy(**kwargs: Any) -> publish.RetryPolicy:
    kwargs.setdefault("jitter", lambda: 1.0)
    kwargs.setdefault("sleep", lambda _: None)
    return publish.RetryPolicy(**kwargs)


def test_backoff_grows_is_capped_and_jittered_between_half_and_all() -> None:
    top = policy(base=0.5, cap=4.0)
    assert [top.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    bottom = policy(base=0.5, cap=4.0, jitter=lambda: 0.0)
    assert [bottom.backoff(n) for n in range(1, 5)] == [0.25, 0.5, 1.0, 2.0]
    hostile = policy(jitter=lambda: 7.0)  # a jitter source out of range is clamped
    assert hostile.backoff(1) == 0.5
    assert policy(cap=15.0).backoff(10_000) == 15.0  # no overflow on a huge retry count


def test_retries_stop_at_the_count_and_the_budget() -> None:
    tries = Retries(policy(retries=3, base=1.0))
    assert [tries.next_wait() for _ in range(4)] == [1.0, 2.0, 4.0, None]
    assert tries.tries == 4

    budget = Retries(policy(retries=10, budget=100.0))
    assert budget.next_wait(60.0) == 60.0
    assert budget.next_wait(60.0) is None  # 120s would pass the budget: not started
    assert "asks to wait" not in budget.refused and "100s budget" in budget.refused


def test_retry_after_is_capped_and_never_negative() -> None:
    tries = Retries(policy(retries=5, max_retry_after=60.0, budget=1000.0))
    assert tries.next_wait(86400.0) == 60.0
    assert tries.next_wait(-5.0) == 0.0
    assert tries.next_wait(float("inf")) == 60.0


def test_zero_retries_never_waits() -> None:
    assert Retries(publish.NO_RETRIES).next_wait() is None


def test_the_settings_make_the_policy() -> None:
    conf = settings.load({}, environ={})
    assert (conf.publish_retries, conf.publish_retry_seconds) == (4, 120)
    made = publish.retry_policy(
        settings.load(
            {}, environ={"LONGCERT_PUBLISH_RETRIES": "2", "LONGCERT_PUBLISH_RETRY_SECONDS": "30"}
        )
    )
    assert (made.retries, made.budget) == (2, 30.0)
    for bad in ("-1", "many", "21", "true", "1.5"):
        with pytest.raises(ConfigError, match="publish_retries"):
            settings.load({}, environ={"LONGCERT_PUBLISH_RETRIES": bad})
    with pytest.raises(ConfigError, match="publish_retry_seconds must be 0 to 3600"):
        settings.load({"publish_retry_seconds": "99999"}, environ={})


# ------------------------------------------------------------------ Http against a script

Step = tuple[int, dict[str, str], bytes] | BaseException


class _Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, url: str) -> None:
        self.status, self.headers, self._body, self._url = status, headers, body, url

    def read(self) -> bytes:
        return self._body

    def geturl(self) -> str:
        return self._url

    def __enter__(self) -> _Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Script:
    """Stands in for urlopen: answers each request with the next step."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.sent: list[tuple[str, str, bytes, dict[str, str]]] = []

    def __call__(self, request: urllib.request.Request, timeout: float = 0) -> _Reply:
        data = request.data
        body = data.read() if hasattr(data, "read") else (data or b"")
        headers = {**request.headers, **request.unredirected_hdrs}
        self.sent.append((request.get_method(), request.full_url, body, headers))
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        status, reply_headers, payload = step
        if status >= 400:
            message = email.message.Message()
            for name, value in reply_headers.items():
                message[name] = value
            raise urllib.error.HTTPError(
                request.full_url, status, "err", message, io.BytesIO(payload)
            )
        return _Reply(status, reply_headers, payload, request.full_url)


def client(
    monkeypatch: pytest.MonkeyPatch, *steps: Step, retries: int = 4, secrets: tuple[str, ...] = ()
) -> tuple[publish.Http, Script, list[float], list[str]]:
    script = Script(*steps)
    monkeypatch.setattr(urllib.request, "urlopen", script)
    sleeps: list[float] = []
    lines: list[str] = []
    http = publish.Http(
        "test",
        secrets=secrets,
        retry=policy(retries=retries, sleep=sleeps.append, jitter=lambda: 0.0),
    )
    http.notify = lines.append
    return http, script, sleeps, lines


OK: Step = (200, {}, b"{}")


def reset() -> BaseException:
    return urllib.error.URLError(ConnectionResetError(104, "Connection reset by peer"))


def refused() -> BaseException:
    return urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_get_is_tried_again_on_errors_that_pass(
    monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    http, script, sleeps, lines = client(monkeypatch, (status, {}, b'{"message":"busy"}'), OK)
    reply = http.request("GET", "https://api.example/x")
    assert reply.status == 200 and reply.tries == 2 and len(script.sent) == 2
    assert sleeps == [0.25]
    assert lines == [
        f"test: GET https://api.example/x: answered {status} busy; trying again "
        "in 0.2s (try 2 of 5)"
    ]


@pytest.mark.parametrize(
    "failure",
    [
        reset,
        lambda: http.client.RemoteDisconnected("closed"),
        lambda: urllib.error.URLError(TimeoutError("timed out")),
        lambda: urllib.error.URLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")),
        lambda: http.client.IncompleteRead(b"abc", 10),
    ],
)
def test_get_and_put_are_tried_again_when_the_connection_breaks(
    monkeypatch: pytest.MonkeyPatch, failure: Callable[[], BaseException]
) -> None:
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        http, script, sleeps, _ = client(monkeypatch, failure(), failure(), OK)
        assert http.request(method, "https://r.example/v2/").status == 200
        assert len(script.sent) == 3 and sleeps == [0.25, 0.5]


def test_a_put_with_a_file_body_is_sent_whole_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * 1000)
    http, script, _, _ = client(monkeypatch, reset(), (201, {}, b""))
    assert http.request("PUT", "https://r.example/blob", body=blob).status == 201
    assert [s[2] for s in script.sent] == [b"x" * 1000, b"x" * 1000]


def test_a_post_is_not_sent_again_when_it_may_have_acted(monkeypatch: pytest.MonkeyPatch) -> None:
    http, script, sleeps, _ = client(monkeypatch, (502, {}, b"{}"))
    assert http.request("POST", "https://api.example/releases").status == 502
    assert len(script.sent) == 1 and sleeps == []
    # a broken connection: the caller re-checks the target (not final), Http does not resend
    http, script, sleeps, _ = client(monkeypatch, reset())
    with pytest.raises(NoAnswerError) as caught:
        http.request("POST", "https://api.example/releases")
    assert not caught.value.final and len(script.sent) == 1 and sleeps == []


def test_a_post_is_sent_again_when_the_server_surely_did_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, script, sleeps, lines = client(
        monkeypatch,
        refused(),
        (503, {"Retry-After": "3"}, b""),
        (429, {"Retry-After": "Sun, 01 Mar 1998 00:00:00 GMT"}, b""),
        (201, {}, b""),
    )
    assert http.request("POST", "https://api.example/releases").status == 201
    assert len(script.sent) == 4 and sleeps == [0.25, 3.0]  # a date in the past: no wait
    assert len(lines) == 3 and "trying again in 0.0s" in lines[2]


def test_idempotent_overrides_the_method(monkeypatch: pytest.MonkeyPatch) -> None:
    http, script, _, _ = client(monkeypatch, (502, {}, b""), OK)
    assert http.request("PATCH", "https://api.example/r/1", idempotent=True).status == 200
    http, script, _, _ = client(monkeypatch, (502, {}, b""))
    assert http.request("PUT", "https://r.example/upload", idempotent=False).status == 502
    assert len(script.sent) == 1


def test_500_is_tried_again_only_for_a_get(monkeypatch: pytest.MonkeyPatch) -> None:
    http, script, _, _ = client(monkeypatch, (500, {}, b""))
    assert http.request("PUT", "https://r.example/m").status == 500 and len(script.sent) == 1


def test_a_secondary_rate_limit_403_waits_for_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    http, _, sleeps, _ = client(monkeypatch, (403, {"Retry-After": "12"}, b""), OK)
    assert http.request("GET", "https://api.example/x").status == 200 and sleeps == [12.0]
    http, script, _, _ = client(monkeypatch, (403, {}, b'{"message":"denied"}'))
    assert http.request("GET", "https://api.example/x").status == 403
    assert len(script.sent) == 1  # a plain 403 is an answer


@pytest.mark.parametrize(
    "failure",
    [
        lambda: urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
        lambda: urllib.error.URLError(
            socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        ),
        lambda: urllib.error.URLError(OSError("Tunnel connection failed: 407 Proxy Auth Required")),
        lambda: urllib.error.URLError("unknown url type: ftp"),
    ],
)
def test_lasting_failures_are_not_tried_again(
    monkeypatch: pytest.MonkeyPatch, failure: Callable[[], BaseException]
) -> None:
    http, script, sleeps, _ = client(monkeypatch, failure())
    with pytest.raises(NoAnswerError) as caught:
        http.request("GET", "https://r.example/v2/")
    assert caught.value.final and len(script.sent) == 1 and sleeps == []
    assert "after" not in str(caught.value)


def test_out_of_tries_says_how_many_and_shows_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    http, script, sleeps, lines = client(
        monkeypatch, *[reset()] * 3, retries=2, secrets=("hunter2-secret",)
    )
    with pytest.raises(NoAnswerError) as caught:
        http.request(
            "GET",
            "https://r.example/v2/x?state=hunter2-secret",
            secret_headers={"Authorization": "Bearer hunter2-secret"},
        )
    text = str(caught.value)
    assert "(after 3 tries)" in text and caught.value.final
    assert "hunter2-secret" not in text + "".join(lines) and "state=" not in text
    assert len(script.sent) == 3 and len(sleeps) == 2
    assert all(s[3]["Authorization"] == "Bearer hunter2-secret" for s in script.sent)


def test_an_answer_that_breaks_off_after_the_status_is_still_that_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise http.client.IncompleteRead(b"", 5)

    def urlopen(request: urllib.request.Request, timeout: float = 0) -> Any:
        raise urllib.error.HTTPError(request.full_url, 404, "nf", email.message.Message(), Broken())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert publish.Http("t", retry=policy()).request("GET", "https://r.example/").status == 404


def test_targets_get_the_policy_of_the_settings() -> None:
    conf = settings.load({"publish_retries": 1, "publish_retry_seconds": 9}, environ={})
    github = publish.parse_target("github:o/r", conf, environ={"GITHUB_TOKEN": "t"})
    oci = publish.parse_target("oci://r.example/k", conf, environ={})
    for target in (github, oci):
        assert isinstance(target, publish.GitHubTarget | publish.OciTarget)
        retry = target.http.retry
        assert (retry.retries, retry.budget) == (1, 9.0)
        assert dataclasses.replace(retry, sleep=print) == retry  # sleep is not compared


def test_a_plain_http_refusal_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    http, script, _, _ = client(monkeypatch)
    with pytest.raises(PublishError, match="will not send credentials over plain HTTP"):
        http.request("GET", "http://r.example/v2/", secret_headers={"Authorization": "x"})
    assert script.sent == []


def test_date_helper_matches_the_clock() -> None:
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=90), usegmt=True)
    value = parse_retry_after(soon)
    assert value is not None and 80 <= value <= 90
