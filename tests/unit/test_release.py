"""`invoke release` / `invoke matrix` logic with a fake pipeline and a directory target."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from longcert import publish, release, settings
from longcert.errors import BuildError, ConfigError, SourceError
from longcert.progress import Reporter
from tests.standin_build import make_build

TAGS = [
    "v1.8.15",  # older than every patch set: left out
    "v1.27.1", "v1.27.3", "v1.27.2",
    "v1.28.6", "v1.28.7", "v1.28.8-rc.0", "v1.28.10-alpha.1",
    "v1.29.0-beta.2",  # a minor with no release yet: left out
    "v1.30.0",
    "kubernetes-1.30", "v1.30.x",  # not release tags
    "v1.99.1",  # newer than every patch set: left out
]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def conf(tmp_path: Path, **flags: object) -> settings.Settings:
    base: dict[str, object] = {"builds_dir": str(tmp_path / "builds"),
                               "cache_dir": str(tmp_path / "cache")}
    return settings.load({**base, **flags}, environ={})


def test_newest_patch_of_each_minor(tmp_path: Path) -> None:
    found = release.newest_patches(TAGS, None, None, conf(tmp_path))
    assert [v.tag for v in found] == ["v1.27.3", "v1.28.7", "v1.30.0"]
    ranged = release.newest_patches(TAGS, "1.28", "1.29", conf(tmp_path))
    assert [v.tag for v in ranged] == ["v1.28.7"]
    exact = release.newest_patches(TAGS, "1.27", "v1.28.6", conf(tmp_path))
    assert [v.tag for v in exact] == ["v1.27.3", "v1.28.6"]


def test_explicit_versions(tmp_path: Path) -> None:
    chosen = release.select(conf(tmp_path), "v1.28.7, v1.33.7 v1.28.7", None, None)
    assert [v.tag for v in chosen] == ["v1.28.7", "v1.33.7"]
    with pytest.raises(ConfigError, match="is not a Kubernetes release tag"):
        release.select(conf(tmp_path), "v1.28.7,1.29", None, None)
    with pytest.raises(ConfigError, match="older than any patch set"):
        release.select(conf(tmp_path), "v1.8.15", None, None)


@pytest.mark.parametrize(
    ("versions", "first", "last", "message"),
    [
        ("v1.28.7", "1.27", None, "either --versions or --from/--to"),
        (None, None, None, "no versions to release"),
        (None, "one.two", None, "--from 'one.two' is not a Kubernetes version"),
        (None, "1.27", "v1.28.x", "--to 'v1.28.x' is not"),
    ],
)
def test_bad_selection(tmp_path: Path, versions: str | None, first: str | None,
                       last: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        release.select(conf(tmp_path), versions, first, last)


def tagged_repo(path: Path, tags: list[str]) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("stand-in\n")
    subprocess.run([*GIT, "-C", str(path), "add", "README"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-qm", "one"], check=True)
    for tag in tags:
        subprocess.run([*GIT, "-C", str(path), "tag", "-a", tag, "-m", tag], check=True)
    return path


def test_range_is_read_from_the_remote_with_ls_remote(tmp_path: Path) -> None:
    repo = tagged_repo(tmp_path / "k8s", TAGS)
    chosen = release.select(conf(tmp_path, repo=str(repo)), None, "1.27", "1.30")
    assert [v.tag for v in chosen] == ["v1.27.3", "v1.28.7", "v1.30.0"]
    with pytest.raises(ConfigError, match=r"no release of .* is covered by a patch set"):
        release.select(conf(tmp_path, repo=str(repo)), None, "1.40", None)


def inputs_of(tag: str, conf: settings.Settings) -> dict[str, object]:
    from longcert.patching import resolve

    return release.pipeline.build_inputs(resolve(tag), conf)


class FakePipeline:
    """Stands in for pipeline.run: writes a verified stand-in build, or fails for some tags."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.built: list[str] = []
        self.fail = fail or {}

    def __call__(self, tag: str, conf: settings.Settings, reporter: Reporter,
                 **_: Any) -> SimpleNamespace:
        assert conf.publish == ""  # the release publishes, not the pipeline
        if tag in self.fail:
            raise self.fail[tag]
        self.built.append(tag)
        out = make_build(conf.builds_dir, tag, conf.years, conf.ca_years, conf.platforms,
                         inputs=inputs_of(tag, conf))
        return SimpleNamespace(output=SimpleNamespace(path=out))


@pytest.fixture
def fake_pipeline(monkeypatch: pytest.MonkeyPatch) -> FakePipeline:
    fake = FakePipeline()
    monkeypatch.setattr(release.pipeline, "run", fake)
    return fake


def run(tmp_path: Path, versions: str, **kwargs: Any) -> release.ReleaseResult:
    return release.run(conf(tmp_path), Reporter(quiet=True), versions=versions,
                       target_text=f"dir:{tmp_path / 'share'}", **kwargs)


def test_release_builds_what_is_missing_then_nothing(tmp_path: Path,
                                                     fake_pipeline: FakePipeline) -> None:
    first = run(tmp_path, "v1.28.7,v1.33.7")
    assert fake_pipeline.built == ["v1.28.7", "v1.33.7"]
    assert [o.status for o in first.outcomes] == ["built and published"] * 2
    share = tmp_path / "share"
    assert sorted(p.name for p in share.iterdir()) == [
        "kubeadm-v1.28.7-leaf10y-ca10y", "kubeadm-v1.33.7-leaf10y-ca10y"]

    second = run(tmp_path, "v1.28.7,v1.33.7")
    assert fake_pipeline.built == ["v1.28.7", "v1.33.7"]  # nothing built again
    assert [o.status for o in second.outcomes] == ["already published"] * 2


def test_one_failure_does_not_stop_the_others(tmp_path: Path, fake_pipeline: FakePipeline,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fake_pipeline.fail = {"v1.27.3": BuildError("make failed in the container")}
    with pytest.raises(BuildError) as caught:
        release.run(conf(tmp_path), Reporter(), versions="v1.27.3,v1.28.7,v1.33.7",
                    target_text=f"dir:{tmp_path / 'share'}")
    assert fake_pipeline.built == ["v1.28.7", "v1.33.7"]
    assert str(caught.value).startswith("1 of 3 version(s) failed: v1.27.3 (BuildError)")
    assert caught.value.exit_code == BuildError.exit_code
    out = capsys.readouterr().out
    assert "release to dir:" in out and "1 failed" in out
    table = [ln.split() for ln in out.splitlines() if ln.startswith("  v1.")]
    assert [(row[0], row[2]) for row in table] == [
        ("v1.27.3", "failed"), ("v1.28.7", "built"), ("v1.33.7", "built")]


def test_mixed_failures_raise_the_first_class(tmp_path: Path,
                                              fake_pipeline: FakePipeline) -> None:
    fake_pipeline.fail = {"v1.28.7": SourceError("tag v1.28.7 does not exist"),
                          "v1.33.7": BuildError("make failed")}
    with pytest.raises(SourceError, match=r"2 of 2 version\(s\) failed: v1.28.7 \(SourceError\), "
                                          r"v1.33.7 \(BuildError\)"):
        run(tmp_path, "v1.28.7,v1.33.7")


def test_an_existing_verified_build_is_published_not_rebuilt(
    tmp_path: Path, fake_pipeline: FakePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its binaries are run before they leave (a stand-in here, with no engine; the real run is
    # tests/integration/test_release.py's)
    ran: list[str] = []
    monkeypatch.setattr(release.publish, "check_binaries_run",
                        lambda build, **_: ran.append(build.build_id))
    make_build(tmp_path / "builds", "v1.28.7", platforms=("linux/amd64",),
               inputs=inputs_of("v1.28.7", conf(tmp_path)))
    result = run(tmp_path, "v1.28.7")
    assert ran == ["kubeadm-v1.28.7-leaf10y-ca10y"]
    assert fake_pipeline.built == []
    assert result.outcomes[0].status == "published existing build"
    assert (tmp_path / "share" / "kubeadm-v1.28.7-leaf10y-ca10y" / "manifest.json").is_file()


def test_an_existing_build_of_other_inputs_is_not_published_as_this_one(
    tmp_path: Path, fake_pipeline: FakePipeline
) -> None:
    """The same name built from another remote: that version fails, nothing is published."""
    other = {**inputs_of("v1.28.7", conf(tmp_path)), "remote": "https://elsewhere/k.git"}
    make_build(tmp_path / "builds", "v1.28.7", platforms=("linux/amd64",), inputs=other)
    with pytest.raises(publish.PublishError, match="1 of 1"):
        run(tmp_path, "v1.28.7")
    assert fake_pipeline.built == [] and not (tmp_path / "share").exists()


def test_pinned_and_multi_platform_releases_have_their_own_names(tmp_path: Path) -> None:
    pinned = release.matrix(conf(tmp_path, pin_validity="true",
                                 platforms="linux/amd64,linux/arm64"),
                            "v1.33.7,v1.28.7", None, None)
    assert [e["build_id"] for e in pinned] == [
        "kubeadm-v1.33.7-leaf10y-ca10y-pinned-linux-amd64.linux-arm64",
        "kubeadm-v1.28.7-leaf10y-ca10y-linux-amd64.linux-arm64"]  # no pin before v1.31


def test_an_existing_unverified_build_fails_that_version(
    tmp_path: Path, fake_pipeline: FakePipeline
) -> None:
    make_build(tmp_path / "builds", "v1.28.7", platforms=("linux/amd64",), passed=False,
               inputs=inputs_of("v1.28.7", conf(tmp_path)))
    with pytest.raises(publish.PublishError, match="1 of 1"):
        run(tmp_path, "v1.28.7")
    assert fake_pipeline.built == []


def test_dry_run_builds_and_publishes_nothing(tmp_path: Path,
                                              fake_pipeline: FakePipeline) -> None:
    result = run(tmp_path, "v1.28.7,v1.33.7", dry_run=True)
    assert [o.status for o in result.outcomes] == ["would build and publish"] * 2
    assert fake_pipeline.built == [] and not (tmp_path / "share").exists()


def test_release_needs_a_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a release needs a target"):
        release.run(conf(tmp_path), Reporter(quiet=True), versions="v1.28.7")


def test_matrix_leaves_out_what_the_target_has(tmp_path: Path) -> None:
    share = tmp_path / "share"
    make_build(share, "v1.28.7", platforms=("linux/amd64",))  # already published there
    entries = release.matrix(conf(tmp_path, years="10"), "v1.28.7,v1.33.7", None, None,
                             f"dir:{share}")
    assert entries == [{"version": "v1.33.7", "build_id": "kubeadm-v1.33.7-leaf10y-ca10y"}]
    text = release.matrix_json(conf(tmp_path, years="20"), "v1.28.7", None, None)
    assert json.loads(text) == [{"version": "v1.28.7", "build_id": "kubeadm-v1.28.7-leaf20y-ca20y"}]
    assert "\n" not in text
