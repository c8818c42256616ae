from __future__ import annotations

from pathlib import Path

import pytest

from longcert import versions
from longcert.errors import ConfigError
from longcert.patching import resolve
from longcert.versions import KubeVersion


@pytest.mark.parametrize("text", ["1.9", "v1.9", "banana", "v1.9.4; rm -rf /", "v1.9.4 ", "V1.9.4",
                                  "v1.9.4-dirty", ""])
def test_not_a_release_tag(text: str) -> None:
    if text == "v1.9.4 ":  # surrounding whitespace is forgiven
        assert KubeVersion.parse(text).tag == "v1.9.4"
        return
    with pytest.raises(ConfigError, match="not a Kubernetes release tag"):
        KubeVersion.parse(text)


def test_ordering_with_prereleases() -> None:
    tags = ["v1.37.0", "v1.37.0-beta.0", "v1.37.0-alpha.2", "v1.36.3", "v1.37.0-rc.1"]
    ordered = sorted(KubeVersion.parse(t) for t in tags)
    assert [v.tag for v in ordered] == [
        "v1.36.3", "v1.37.0-alpha.2", "v1.37.0-beta.0", "v1.37.0-rc.1", "v1.37.0"]


def test_in_range() -> None:
    v = KubeVersion.parse("v1.13.5")
    assert versions.in_range(v, "1.9", "1.13")
    assert not versions.in_range(v, "1.14", "1.14")
    assert versions.in_range(KubeVersion.parse("v1.37.0-beta.0"), "1.31", "1.37")


@pytest.mark.parametrize(
    ("text", "go"),
    [("v1.12.10-1", "1.12.10"), ("v1.28.0-go1.21.7-bullseye.0", "1.21.7"),
     ("v1.15.8-legacy-1", "1.15.8"), ("v1.9.3-2", "1.9.3"), ("garbage", None)],
)
def test_go_from_cross_version(text: str, go: str | None) -> None:
    assert versions.go_from_cross_version(text) == go


def test_go_version_for_tree_prefers_go_version_file(tmp_path: Path) -> None:
    cross = tmp_path / "build/build-image/cross"
    cross.mkdir(parents=True)
    (cross / "VERSION").write_text("v1.28.0-go1.21.7-bullseye.0\n")
    v = KubeVersion.parse("v1.28.7")
    assert versions.go_version_for_tree(tmp_path, v) == versions.GoVersion(
        "1.21.7", "build/build-image/cross/VERSION")
    (tmp_path / ".go-version").write_text("1.21.8\n")
    assert versions.go_version_for_tree(tmp_path, v).version == "1.21.8"


def test_go_version_table_fallback(tmp_path: Path) -> None:
    found = versions.go_version_for_tree(tmp_path, KubeVersion.parse("v1.20.5"))
    assert found.source == "config/go-versions.yaml"


def test_every_minor_resolves_to_one_patch_set_and_a_go() -> None:
    expected = {**dict.fromkeys(range(9, 14), "e1-clientgo-cert"), 14: "e2-pkiutil-local",
                **dict.fromkeys(range(15, 31), "e3-certificate-validity"),
                **dict.fromkeys(range(31, 38), "e4-validity-period")}
    # Go of each minor's x.0 build when the tree names none (shared/reference, section 4).
    go = {9: "1.9.2", 10: "1.9.3", 11: "1.10.2", 12: "1.10.4", 13: "1.11.2", 14: "1.12.1",
          15: "1.12.5", 16: "1.12.9", 17: "1.13.4", 18: "1.13.8", 19: "1.15.0", 20: "1.15.5",
          21: "1.16.1", 22: "1.16.6", 23: "1.17.3", 24: "1.18.1", 25: "1.19.0", 26: "1.19.4",
          27: "1.20.3", 28: "1.20.7", 29: "1.21.5", 30: "1.22.2", 31: "1.22.5", 32: "1.23.3",
          33: "1.24.2", 34: "1.24.6", 35: "1.25.5", 36: "1.26.2", 37: "1.26.5"}
    for minor, name in expected.items():
        release = resolve(f"v1.{minor}.0")
        assert release.patch_set.name == name, minor
        assert release.go_hint == go[minor], minor
    assert resolve("v1.37.0-beta.0").patch_set.name == "e4-validity-period"


def test_too_old_and_the_newest_minor() -> None:
    with pytest.raises(ConfigError, match="older than any patch set"):
        resolve("v1.8.15")
    assert not resolve("v1.37.0").unchecked
    # A minor newer than every patch set is tried with the newest one, marked unchecked.
    newer = resolve("v1.38.0-alpha.1")
    assert newer.unchecked and newer.patch_set.name == "e4-validity-period"
    assert resolve("v1.39.2").unchecked
    with pytest.raises(ConfigError, match="no patch set covers"):
        resolve("v2.0.0")


DEPENDENCIES = """dependencies:
  # Golang
  - name: "golang: upstream version"
    version: 1.20
    refPaths:
    - path: .go-version
  - name: "golang: etcd release version"
    version: 1.19.9
"""


def test_go_from_dependencies_yaml_keeps_the_version_as_text(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build/dependencies.yaml").write_text(DEPENDENCIES)
    found = versions.go_version_for_tree(tmp_path, KubeVersion.parse("v1.27.0"))
    assert found == versions.GoVersion("1.20", "build/dependencies.yaml")  # not 1.2
    assert versions.go_from_dependencies("[unbalanced") is None


def test_go_mod_floor(tmp_path: Path) -> None:
    assert versions.go_mod_floor(tmp_path) is None
    (tmp_path / "go.mod").write_text("module k8s.io/kubernetes\n\ngo 1.24.0\n\ngodebug x=1\n")
    assert versions.go_mod_floor(tmp_path) == "1.24.0"


def test_go_rules_by_era() -> None:
    rule = {m: versions.go_policy(KubeVersion.parse(f"v1.{m}.0")).rule for m in range(9, 40)}
    assert {rule[m] for m in range(9, 15)} == {"gopath"}
    assert {rule[m] for m in range(15, 18)} == {"own"}
    assert {rule[m] for m in range(18, 40)} == {"floor"}
    own = versions.go_policy(KubeVersion.parse("v1.16.3"))
    assert not own.refusal("1.12.17", "1.12.9", "1.12") and own.refusal("1.13.15", "1.12.9", None)
    floor = versions.go_policy(KubeVersion.parse("v1.31.0"))
    assert not floor.refusal("1.24.9", "1.22.5", "1.22.0")
    assert floor.refusal("1.24.11", "1.22.5", None)  # above v1.31's ceiling 1.24.9
    assert floor.refusal("1.22.4", "1.22.5", "1.22.0")  # older than the tree's own
    assert floor.refusal("1.21.13", "1.21.0", "1.22.0")  # below go.mod's floor
    assert versions.go_policy(KubeVersion.parse("v1.39.0")).note.startswith("not in the table")


# --- the Go ceiling per minor and vendored code known to crash on newer Go -----------------


def test_every_minor_has_a_ceiling_at_or_above_its_go() -> None:
    from longcert.versions import go_key, go_policies

    rows = go_policies()
    assert set(rows) >= {f"1.{m}" for m in range(9, 39)}
    for row in rows.values():
        assert row.ceiling and row.ceiling_note, row.minor
        assert go_key(row.ceiling) >= go_key(row.upstream_go), row.minor
    # v1.22 (the reflect2 v1.0.1 line): its last patch release was built with Go 1.16.15.
    assert rows["1.22"].ceiling == "1.16.15"
    assert rows["1.22"].above_ceiling("1.24.11") and not rows["1.22"].above_ceiling("1.16.15")


def test_vendored_reflect2_v101_is_refused_from_go_118(tmp_path: Path) -> None:
    from longcert.versions import vendored_incompatibilities

    tree = tmp_path / "tree"
    (tree / "vendor").mkdir(parents=True)
    (tree / "vendor" / "modules.txt").write_text(
        "# github.com/json-iterator/go v1.1.11\n## explicit\ngithub.com/json-iterator/go\n"
        "# github.com/modern-go/reflect2 v1.0.1\ngithub.com/modern-go/reflect2\n")
    problems = vendored_incompatibilities(tree, "1.24.11")
    assert len(problems) == 1
    assert problems[0].startswith("github.com/modern-go/reflect2 v1.0.1 breaks on Go 1.18 and "
                                  "newer: its map iterator links to reflect.mapiterinit")
    assert "modern-go/reflect2#24" in problems[0]
    assert vendored_incompatibilities(tree, "1.17.13") == []
    assert vendored_incompatibilities(tree, "1.16.15") == []
    (tree / "vendor" / "modules.txt").write_text("# github.com/modern-go/reflect2 v1.0.2\n")
    assert vendored_incompatibilities(tree, "1.24.11") == []


def test_godeps_revisions_of_reflect2_are_refused_too(tmp_path: Path) -> None:
    """v1.9 - v1.14 vendor through Godeps: the pre-v1.0.2 revisions break the same way."""
    import json

    from longcert.versions import vendored_incompatibilities, vendored_versions

    tree = tmp_path / "tree"
    (tree / "Godeps").mkdir(parents=True)
    (tree / "Godeps" / "Godeps.json").write_text(json.dumps({"Deps": [
        {"ImportPath": "github.com/modern-go/reflect2",
         "Rev": "94122c33edd3" + "0" * 28}]}, indent="\t"))
    assert vendored_versions(tree) == {
        "github.com/modern-go/reflect2": "94122c33edd3" + "0" * 28}
    assert len(vendored_incompatibilities(tree, "1.21.13")) == 1
    assert vendored_incompatibilities(tree, "1.12.12") == []
    (tree / "Godeps" / "Godeps.json").write_text("not json")
    assert vendored_incompatibilities(tree, "1.21.13") == []


def test_the_pipeline_refuses_before_compiling_and_warns_above_the_ceiling(
        tmp_path: Path) -> None:
    """v1.22 vendors reflect2 v1.0.1: a stand-in Go 1.24.11 is refused before the compile with
    the command that makes the tree's own Go; a v1.33 tree with Go 1.27.1 (above its ceiling)
    builds, with a warning naming the risk."""
    from types import SimpleNamespace

    from longcert import pipeline
    from longcert.errors import ImageError
    from longcert.versions import GoVersion

    lines: list[str] = []
    reporter = SimpleNamespace(warn=lines.append)
    settings = SimpleNamespace(image="golang:{go_version}")
    tree = tmp_path / "v1.22.15"
    (tree / "vendor").mkdir(parents=True)
    (tree / "vendor" / "modules.txt").write_text("# github.com/modern-go/reflect2 v1.0.1\n")
    (tree / ".go-version").write_text("1.16.15\n")
    choice = SimpleNamespace(go=GoVersion("1.24.11", "probed"))
    release = resolve("v1.22.15")
    with pytest.raises(ImageError) as raised:
        pipeline._check_go_fits_tree(choice, tree, release, settings, reporter)  # type: ignore[arg-type]
    assert raised.value.message.startswith(
        "v1.22.15 with Go 1.24.11 would build a kubeadm that crashes: "
        "github.com/modern-go/reflect2 v1.0.1 breaks on Go 1.18 and newer")
    assert raised.value.hint == ("build with the tree's own Go 1.16.15: `longcert builder-image "
                                 "--go-version 1.16.15`, then run this again")
    newer = tmp_path / "v1.33.7"
    newer.mkdir()
    (newer / ".go-version").write_text("1.24.11\n")
    pipeline._check_go_fits_tree(SimpleNamespace(go=GoVersion("1.27.1", "probed")),  # type: ignore[arg-type]
                                 newer, resolve("v1.33.7"), settings,
                                 reporter)
    assert len(lines) == 1 and lines[0].startswith(
        "Go 1.27.1 is newer than any Go v1.33 is known to run with (1.25.11: ")
    pipeline._check_go_fits_tree(SimpleNamespace(go=GoVersion("1.24.11", "probed")),  # type: ignore[arg-type]
                                 newer, resolve("v1.33.7"), settings,
                                 reporter)
    assert len(lines) == 1


def test_a_kubeadm_that_crashes_under_a_stand_in_go_is_one_line(tmp_path: Path) -> None:
    """The v1.22.15 report: built with a stand-in Go, kubeadm panics in reflect2; the error is
    one line naming the tree's own Go and the command that makes it (was: a stack trace and
    six "missing" lines)."""
    from types import SimpleNamespace

    from longcert import pipeline, verify
    from longcert.errors import VerifyError

    output = ("I1203 10:00:00 some log\n"
              "panic: runtime error: invalid memory address or nil pointer dereference\n"
              "[signal SIGSEGV: segmentation violation code=0x1 addr=0x8 pc=0x4b0f6e]\n\n"
              "goroutine 1 [running]:\n"
              "k8s.io/kubernetes/vendor/github.com/modern-go/reflect2.(*UnsafeMapIterator)."
              "HasNext(...)\n")
    assert verify.go_crash(output) == (
        "panic: runtime error: invalid memory address or nil pointer dereference")
    assert verify.go_crash("fatal error: concurrent map writes\n") == (
        "fatal error: concurrent map writes")
    assert verify.go_crash("error: something else\n") == ""
    problems: list[str] = []
    verify._Runner._failed(2, output, "init phase kubeconfig all", problems)
    assert problems == ["`kubeadm init phase kubeconfig all` crashed in the Go runtime: panic: "
                        "runtime error: invalid memory address or nil pointer dereference"]

    tree = tmp_path / "v1.22.15"
    tree.mkdir()
    (tree / ".go-version").write_text("1.16.15\n")
    report = SimpleNamespace(failures=lambda: [problems[0], "pki/ca.crt: missing"])
    settings = SimpleNamespace(image="golang:{go_version}")
    log = tmp_path / "build.log"
    with pytest.raises(VerifyError) as raised:
        pipeline._stand_in_go_crash([report], "1.24.11", tree, resolve("v1.22.15"),  # type: ignore[list-item, arg-type]
                                    settings, log)  # type: ignore[arg-type]
    assert raised.value.message == (
        "kubeadm v1.22.15 built with Go 1.24.11 instead of the tree's Go 1.16.15 crashes (panic: "
        "runtime error: invalid memory address or nil pointer dereference): the Go stood in for "
        "one it does not run with")
    assert raised.value.hint == (f"`longcert builder-image --go-version 1.16.15`, then build "
                                 f"again (the stack trace is in {log})")
    # Built with the tree's own Go, a crash is an ordinary verification failure.
    pipeline._stand_in_go_crash([report], "1.16.15", tree, resolve("v1.22.15"),  # type: ignore[list-item, arg-type]
                                settings, log)  # type: ignore[arg-type]
