"""The GitHub Releases target against a local fake of the release endpoints (loopback only).

No Docker: these run with the unit tests too (`-m "not docker"`), on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from longcert import publish, settings
from longcert.errors import PublishError
from longcert.progress import Reporter
from tests.fake_github import FakeGitHub, Release
from tests.standin_build import make_build

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ghs_fake_token_0123456789"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(token=TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    yield fake
    fake.stop()


@pytest.fixture
def build(tmp_path: Path) -> publish.Build:
    return publish.load_build(make_build(tmp_path / "builds"))


def target_of(fake: FakeGitHub, retries: int | None = None) -> publish.Target:
    flags: dict[str, object] = {"github_api_url": fake.api_url, "publish_retries": retries}
    conf = settings.load(flags, environ={})
    return publish.open_target(f"github:{fake.owner}/{fake.repo}", conf, dry_run=False)


def push(fake: FakeGitHub, build: publish.Build, dry_run: bool = False,
         retries: int | None = None) -> publish.PublishResult:
    return publish.push(build, target_of(fake, retries), Reporter(quiet=True), dry_run=dry_run)


def fetch_assets(fake: FakeGitHub, tag: str) -> dict[str, str]:
    """Download every asset the way a user does (browser_download_url): name -> sha256."""
    release = fake.release(tag)
    assert release is not None
    out = {}
    for asset in release.assets:
        with urllib.request.urlopen(f"{fake.origin}/download/{asset.id}", timeout=10) as reply:
            out[asset.name] = hashlib.sha256(reply.read()).hexdigest()
    return out


def invoke(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCERT_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), *args],
                          capture_output=True, text=True, env=full_env, cwd=cwd, check=False,
                          timeout=120)


def test_release_assets_and_notes_then_rerun_uploads_nothing(
    github: FakeGitHub, build: publish.Build
) -> None:
    result = push(github, build)
    assert result.changed == len(build.files) + 2  # a draft, every file, then publish it
    release = github.published(build.build_id)
    assert release is not None and len(github.releases) == 1
    assert result.location.endswith(f"/releases/tag/{build.build_id}")  # not the draft's page
    assert release.name == "kubeadm v1.33.7: leaf certificates 10y, CAs 10y"
    assert [a.name for a in release.assets] == [f.name for f in build.files]
    assert [a.name for a in release.assets][-1] == "manifest.json"  # the completion marker
    # Fetched back, every asset is byte-for-byte the build's file.
    assert fetch_assets(github, build.build_id) == {f.name: f.sha256 for f in build.files}
    # Notes generated from the manifest: version, validities, Go, sha256 table.
    for text in ("v1.33.7", "| leaf certificates | 10 years (87600h) |", "| CAs | 10 years",
                 "| Go | 1.24.11 (from .go-version) |", "verification | passed",
                 "sha256sum -c SHA256SUMS"):
        assert text in release.body, text
    for item in build.files:
        if item.name != "manifest.json":
            assert f"| `{item.name}` |" in release.body and item.sha256 in release.body

    writes_before = len(github.writes())
    again = push(github, build)
    assert again.changed == 0
    assert {a.verb for a in again.actions} == {"skip"}
    assert len(github.writes()) == writes_before  # nothing created, uploaded or deleted
    assert target_of(github).has(build)


def test_upload_broken_half_way_is_completed_by_a_rerun(
    github: FakeGitHub, build: publish.Build, tmp_path: Path
) -> None:
    github.fail_uploads = {"kubeadm-linux-arm64"}
    env = {"GITHUB_TOKEN": TOKEN, "LONGCERT_GITHUB_API_URL": github.api_url}
    args = ("publish", "--build", str(build.path), "--publish",
            f"github:{github.owner}/{github.repo}", "--no-run-check")  # stand-in binaries
    # without retries, so that the run stops there (with them, the same run replaces it:
    # test_flaky_network_publish_ends_identical_to_a_clean_one)
    first = invoke(*args, env={**env, "LONGCERT_PUBLISH_RETRIES": "0"}, cwd=tmp_path)
    assert first.returncode == 9, first.stderr
    lines = [ln for ln in first.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in first.stderr + first.stdout
    assert "uploading kubeadm-linux-arm64 to github:example/kubeadm-builds failed" in lines[0]
    assert "run the same command again" in lines[0]
    assert TOKEN not in first.stdout + first.stderr
    release = github.release(build.build_id)
    assert release is not None
    assert {a.name: a.state for a in release.assets} == {
        "kubeadm-linux-amd64": "uploaded", "kubeadm-linux-arm64": "starter"}
    # Still a draft: nobody sees the half-filled release, not even by its tag.
    assert release.draft and github.published(build.build_id) is None
    assert not target_of(github).has(build)

    second = invoke(*args, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "skip kubeadm-linux-amd64: already there, same sha256" in second.stdout
    assert "replace kubeadm-linux-arm64" in second.stdout
    assert f"finish draft release {build.build_id}" in second.stdout
    assert len(github.releases) == 1 and not release.draft  # the same release, now published
    assert TOKEN not in second.stdout + second.stderr
    assert fetch_assets(github, build.build_id) == {f.name: f.sha256 for f in build.files}
    assert sum(1 for p in github.uploads() if p.endswith("?name=kubeadm-linux-amd64")) == 1
    assert target_of(github).has(build)

    third = invoke(*args, env=env, cwd=tmp_path)
    assert third.returncode == 0 and "nothing to publish" in third.stdout


def test_interrupted_upload_leaves_a_draft_that_a_rerun_finishes(
    github: FakeGitHub, build: publish.Build
) -> None:
    names = [f.name for f in build.files]
    broken = names.index("SHA256SUMS")  # an upload after the binaries breaks half-way
    github.fail_uploads = {"SHA256SUMS"}
    with pytest.raises(PublishError, match="uploading SHA256SUMS"):
        push(github, build, retries=0)  # with retries the same run replaces it
    draft = github.release(build.build_id)
    assert draft is not None and draft.draft
    assert [a.name for a in draft.assets] == names[: broken + 1]
    # GitHub's lookup by tag does not find a draft, so neither a user nor `has` sees it.
    by_tag = f"{github.api_url}/repos/{github.owner}/{github.repo}/releases/tags/{draft.tag_name}"
    request = urllib.request.Request(by_tag, headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(request, timeout=10)
    assert not target_of(github).has(build)

    plan = push(github, build, dry_run=True)
    assert [a.describe(True) for a in plan.actions][-1].startswith(
        f"would finish draft release {build.build_id}")
    assert {a.verb for a in plan.actions[:2]} == {"skip"}  # the binaries are already there

    result = push(github, build)
    assert [a.verb for a in result.actions] == (
        ["skip"] * broken + ["replace"] + ["upload"] * (len(names) - broken - 1) + ["finish"])
    assert len(github.releases) == 1 and not draft.draft  # that draft, now published
    assert fetch_assets(github, build.build_id) == {f.name: f.sha256 for f in build.files}
    assert target_of(github).has(build)
    assert push(github, build).changed == 0


def test_failed_publish_step_leaves_a_full_draft_that_a_rerun_publishes(
    github: FakeGitHub, build: publish.Build
) -> None:
    github.fail_publish = True
    with pytest.raises(PublishError, match=r"PATCH .* answered 500"):
        push(github, build)
    draft = github.release(build.build_id)
    assert draft is not None and draft.draft
    assert [a.name for a in draft.assets] == [f.name for f in build.files]
    assert not target_of(github).has(build)
    uploads = len(github.uploads())

    result = push(github, build)
    assert result.changed == 1 and result.actions[-1].verb == "finish"
    assert len(github.uploads()) == uploads  # nothing uploaded twice
    assert not draft.draft and target_of(github).has(build)


def test_a_draft_made_by_a_concurrent_run_is_the_one_filled(
    github: FakeGitHub, build: publish.Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drafts do not hold their tag, so two runs can each make one: the newer run's draft, still
    empty, is deleted and both fill the oldest."""
    target = target_of(github)
    # Another run's draft appears after this run looked for one and found none.
    monkeypatch.setattr(target, "_release", lambda ref: None)
    github.releases.append(Release(1, build.build_id, "", "", False, draft=True))
    result = publish.push(build, target, Reporter(quiet=True))
    assert result.actions[0].verb == "create"
    assert [(r.id, r.draft) for r in github.releases] == [(1, False)]
    assert ("DELETE", f"/repos/{github.owner}/{github.repo}/releases/1000") in github.writes()
    assert fetch_assets(github, build.build_id) == {f.name: f.sha256 for f in build.files}


def test_enterprise_base_url_and_assets_without_digest(
    monkeypatch: pytest.MonkeyPatch, build: publish.Build
) -> None:
    fake = FakeGitHub(token=TOKEN, prefix="/api/v3", digests=False)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    try:
        assert push(fake, build).changed == len(build.files) + 2
        uploads = len(fake.uploads())
        again = push(fake, build)  # checksums found by downloading each asset
        assert again.changed == 0 and len(fake.uploads()) == uploads
        assert any("/releases/assets/" in p for m, p in fake.requests if m == "GET")
        assert fake.download_auth_headers == []  # the token is not forwarded to storage
    finally:
        fake.stop()


def test_different_asset_of_the_same_name_is_refused(
    github: FakeGitHub, build: publish.Build, tmp_path: Path
) -> None:
    push(github, build)
    other = publish.load_build(make_build(tmp_path / "other", salt="rebuilt"))
    writes = len(github.writes())
    with pytest.raises(PublishError, match="already has a different kubeadm-linux-amd64"):
        push(github, other)
    assert len(github.writes()) == writes


def test_dry_run_writes_nothing_and_says_what_it_would_do(
    github: FakeGitHub, build: publish.Build, capsys: pytest.CaptureFixture[str]
) -> None:
    result = publish.push(build, target_of(github), Reporter(), dry_run=True)
    assert result.dry_run and result.changed == len(build.files) + 2
    out = capsys.readouterr().out
    assert "would create draft release kubeadm-v1.33.7-leaf10y-ca10y" in out
    assert "would upload kubeadm-linux-amd64" in out
    assert "would publish release kubeadm-v1.33.7-leaf10y-ca10y" in out
    assert github.writes() == []


def test_bad_token_is_one_clear_line_without_the_token(
    github: FakeGitHub, build: publish.Build, tmp_path: Path
) -> None:
    wrong = "ghp_wrong_secret_value_42"
    result = invoke("publish", "--build", str(build.path), "--publish",
                    "github:example/kubeadm-builds", "--no-run-check",
                    env={"GITHUB_TOKEN": wrong, "LONGCERT_GITHUB_API_URL": github.api_url},
                    cwd=tmp_path)
    assert result.returncode == 9
    assert wrong not in result.stdout + result.stderr
    assert "answered 401 Bad credentials" in result.stderr
    assert "check GITHUB_TOKEN" in result.stderr
    assert github.releases == []


def test_unreachable_api_is_a_publish_error(build: publish.Build,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGitHub(token=TOKEN)
    fake.stop()  # nothing listens on that port any more
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with pytest.raises(PublishError, match=r"failed: .*refused.* \(after 2 tries\)"):
        push(fake, build, retries=1)


# ------------------------------------------------------------------ a flaky network


def flaky_target(fake: FakeGitHub) -> tuple[publish.GitHubTarget, list[float]]:
    """The target with the default retry policy, its sleeps recorded instead of slept."""
    target = target_of(fake)
    assert isinstance(target, publish.GitHubTarget)
    sleeps: list[float] = []
    target.http.retry = dataclasses.replace(target.http.retry, sleep=sleeps.append)
    return target, sleeps


def release_state(fake: FakeGitHub, tag: str) -> tuple[object, ...]:
    """Everything a user sees of the release: title, notes, flags, assets by name."""
    release = fake.published(tag)
    assert release is not None
    assets = sorted((a.name, a.state, a.content_type, hashlib.sha256(a.data).hexdigest())
                    for a in release.assets)
    return release.name, release.body, release.prerelease, release.draft, tuple(assets)


def test_flaky_network_publish_ends_identical_to_a_clean_one(
    github: FakeGitHub, build: publish.Build
) -> None:
    """5xx and resets on the first requests, 429 with Retry-After on the create, a create
    whose answer is lost, an upload reset and one broken off half-way (leaving a "starter"
    asset), a reset publish: one run ends with the release a clean run makes."""
    clean = FakeGitHub(token=TOKEN)
    try:
        push(clean, build)
        expected = release_state(clean, build.build_id)
    finally:
        clean.stop()

    github.faults.add(1, status=502)
    github.faults.add(1, reset=True)
    github.faults.add(1, status=503)
    github.faults.add(1, status=504)
    github.faults.add(1, status=429, retry_after="7", method="POST", path=r"/releases$")
    github.faults.add(1, lose=True, method="POST", path=r"/releases$")  # made, answer lost
    github.faults.add(1, reset=True, method="POST", path=r"name=kubeadm-linux-amd64")
    github.faults.add(1, status=503, retry_after="2", method="POST", path=r"name=SHA256SUMS")
    github.faults.add(1, status=502, method="POST", path=r"name=patch\.diff")
    github.faults.add(1, reset=True, method="PATCH")
    github.fail_uploads = {"kubeadm-linux-arm64"}  # half the body, a starter asset, dropped
    target, sleeps = flaky_target(github)
    lines: list[str] = []
    result = target.push(build, progress=lines.append)

    assert [f.times for f in github.faults.plan] == [0] * len(github.faults.plan)  # all served
    assert not github.fail_uploads
    assert len(github.releases) == 1  # the draft the lost answer made was found, not doubled
    assert release_state(github, build.build_id) == expected
    assert fetch_assets(github, build.build_id) == {f.name: f.sha256 for f in build.files}
    assert result.location.endswith(f"/releases/tag/{build.build_id}")
    assert 7.0 in sleeps and 2.0 in sleeps  # Retry-After honoured
    assert all(0 <= s <= 60 for s in sleeps)
    starter_deleted = [p for m, p in github.requests
                       if m == "DELETE" and "/releases/assets/" in p]
    assert len(starter_deleted) == 1  # the half-uploaded asset, before its second upload
    notices = [ln for ln in lines if "trying again" in ln]
    assert len(notices) == len(sleeps) and all(TOKEN not in ln for ln in lines)
    assert target_of(github).has(build)
    assert push(github, build).changed == 0


def test_a_server_that_stays_down_is_one_clear_error(
    github: FakeGitHub, build: publish.Build
) -> None:
    github.faults.add(100, status=503, retry_after="1")
    target, sleeps = flaky_target(github)
    with pytest.raises(PublishError) as caught:
        target.push(build)
    assert "answered 503" in str(caught.value) and "(after 5 tries)" in str(caught.value)
    assert sleeps == [1.0] * 4 and github.releases == []
    assert TOKEN not in str(caught.value)


def test_a_long_retry_after_is_not_waited_for(github: FakeGitHub, build: publish.Build) -> None:
    """A Retry-After of a day is capped to a minute; past the budget the request fails."""
    github.faults.add(100, status=429, retry_after="86400")
    target, sleeps = flaky_target(github)
    with pytest.raises(PublishError, match="answered 429") as caught:
        target.push(build)
    assert sleeps == [60.0, 60.0]  # two capped waits fit the 120s budget, a third would not
    assert "rate limit" in str(caught.value)


@pytest.mark.parametrize("repository", ["OWNER/REPO", "someone/else"])
def test_the_release_tag_is_made_at_the_commit_the_workflow_built(
    github: FakeGitHub, build: publish.Build, monkeypatch: pytest.MonkeyPatch, repository: str
) -> None:
    """In the release workflow the tag goes on GITHUB_SHA, the commit whose run made the
    build, not on the branch head when publish runs (issue 20); a workflow of another
    repository's commit means nothing here, so GitHub's default is left."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_SHA", commit)
    ours = f"{github.owner}/{github.repo}"
    monkeypatch.setenv("GITHUB_REPOSITORY", ours if repository == "OWNER/REPO" else repository)
    push(github, build)
    release = github.release(build.build_id)
    assert release is not None
    assert release.target_commitish == (commit if repository == "OWNER/REPO" else "")
