from __future__ import annotations

from pathlib import Path

import pytest

from longcert import settings
from longcert.errors import ConfigError


def load(flags: dict[str, object] | None = None, env: dict[str, str] | None = None):
    return settings.load(flags or {}, environ=env or {})


def test_defaults_and_sources() -> None:
    conf = load()
    assert conf.years == 10
    assert conf.ca_years == 10
    assert conf.platforms == ("linux/amd64",)
    assert conf.sources["years"] == "default"
    assert conf.sources["ca_years"].startswith("auto")


def test_flag_beats_env_beats_default() -> None:
    conf = load({"years": "20"}, {"LONGCERT_YEARS": "5", "LONGCERT_REPO": "/srv/k8s"})
    assert conf.years == 20
    assert conf.sources["years"] == "flag --years"
    assert conf.repo == "/srv/k8s"
    assert conf.sources["repo"] == "env LONGCERT_REPO"


def test_ca_years_auto_follows_larger_leaf() -> None:
    assert load({"years": "100"}).ca_years == 100
    assert load({"years": "3"}).ca_years == 10
    assert load({"years": "100", "ca_years": "100"}).ca_years == 100


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", "293", "10y"])
def test_bad_years(value: str) -> None:
    with pytest.raises(ConfigError, match="--years"):
        load({"years": value})


def test_max_years_is_292() -> None:
    assert load({"years": "292", "ca_years": "292"}).years == 292


def test_leaf_longer_than_ca() -> None:
    with pytest.raises(ConfigError, match="longer than --ca-years"):
        load({"years": "20", "ca_years": "10"})


def test_unknown_env_key_hints() -> None:
    with pytest.raises(ConfigError, match="did you mean 'years'"):
        load(env={"LONGCERT_YEAR": "3"})


def test_unknown_platform_hints() -> None:
    with pytest.raises(ConfigError, match="did you mean linux/arm64"):
        load({"platforms": "linux/amd64,linux/arm46"})


def test_platform_list() -> None:
    conf = load({"platforms": "linux/amd64, linux/arm64 linux/amd64"})
    assert conf.platforms == ("linux/amd64", "linux/arm64")


@pytest.mark.parametrize("value", ["1.24", "1.24.11", "go1.21.13", "auto"])
def test_go_version(value: str) -> None:
    assert load({"go_version": value}).go_version == value.removeprefix("go")


def test_bad_go_version_and_image() -> None:
    with pytest.raises(ConfigError, match="go-version"):
        load({"go_version": "latest"})
    with pytest.raises(ConfigError, match="placeholder"):
        load({"image": "golang:{go}"})


@pytest.mark.parametrize(("env", "message"), [
    ({"LONGCERT_YEARS": "+-5"},
     "must be a whole number of years, got '+-5' (from env LONGCERT_YEARS)"),
    ({"LONGCERT_YEARS": "--5"}, "must be a whole number of years"),
    ({"LONGCERT_YEARS": "²"}, "must be a whole number of years"),
    ({"LONGCERT_YEARS": "٣"}, "must be a whole number of years"),
    ({"LONGCERT_CACHE_DIR": ""}, "--cache-dir is empty (from env LONGCERT_CACHE_DIR)"),
    ({"LONGCERT_BUILDS_DIR": " "}, "--builds-dir is empty"),
    ({"LONGCERT_BUILD_CACHE_VOLUME": ""}, "must be a Docker volume name"),
    ({"LONGCERT_MODULE_CACHE_VOLUME": "a/b"}, "must be a Docker volume name"),
    ({"LONGCERT_REGISTRY_MIRROR": "https://user:pw@m"}, "--registry-mirror must be"),
    ({"LONGCERT_CONTAINER_MEMORY": "lots"}, "--container-memory must be a size"),
    ({"LONGCERT_CONTAINER_PIDS": "3"}, "--container-pids must be a whole number"),
    ({"LONGCERT_TEST_GO": "1.24.11"}, "unknown setting 'test_go' from environment variable"),
])
def test_every_bad_setting_is_a_config_error_naming_its_source(env: dict[str, str],
                                                               message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.load({}, environ=env)
    assert message in str(caught.value)


def test_null_and_unknown_keys_in_the_settings_file(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    text = settings.DEFAULTS_FILE.read_text()
    defaults = tmp_path / "defaults.yaml"
    monkeypatch.setattr(settings, "DEFAULTS_FILE", defaults)
    defaults.write_text(text.replace("cache_dir: ~/.cache/longcert", "cache_dir: null"))
    with pytest.raises(ConfigError, match=r"setting cache_dir has no value \(null\) \(from "
                                          r"config/defaults.yaml\)"):
        settings.load({}, environ={})
    defaults.write_text(text + "cache_dri: /tmp\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'cache_dri'.*did you mean 'cache_dir'"):
        settings.load({}, environ={})


def test_repo_credentials_are_split_off() -> None:
    conf = settings.load({"repo": "https://ci-bot:tok%40en@git.example.com/k8s/kubernetes.git"},
                         environ={})
    assert conf.repo == "https://git.example.com/k8s/kubernetes.git"
    assert conf.repo_credentials == ("ci-bot", "tok@en")
    assert "tok" not in repr(conf) and all("tok" not in v for _, v, _ in conf.rows())
    ssh = settings.load({"repo": "ssh://git@git.example.com/k.git"}, environ={})
    assert ssh.repo == "ssh://git@git.example.com/k.git" and ssh.repo_credentials is None
    scp = settings.load({"repo": "git@github.com:kubernetes/kubernetes.git"}, environ={})
    assert scp.repo_credentials is None


# --- settings files: the user's and the project's ----------------------------------------


def test_user_and_project_files_are_layered_under_env_and_flags(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".config" / "longcert").mkdir(parents=True)
    project.mkdir()
    user_file = home / ".config" / "longcert" / "config.yaml"
    user_file.write_text("years: 3\nplatforms: linux/arm64\ncache-dir: cache\n")
    (project / "longcert.yaml").write_text("years: 4\nbuilds_dir: out\n")
    env = {"HOME": str(home)}
    conf = settings.load({}, environ=env, cwd=project)
    assert conf.years == 4 and conf.sources["years"] == f"project {project / 'longcert.yaml'}"
    assert conf.platforms == ("linux/arm64",)
    assert conf.sources["platforms"] == f"user {user_file}"
    # relative paths in a file are the file's, not the working directory's
    assert conf.cache_dir == home / ".config" / "longcert" / "cache"
    assert conf.builds_dir == project / "out"
    assert settings.load({}, environ={**env, "LONGCERT_YEARS": "5"}, cwd=project).years == 5
    assert settings.load({"years": "6"}, environ=env, cwd=project).years == 6
    # XDG_CONFIG_HOME moves the user's file; a relative one is ignored, as the spec says
    xdg = tmp_path / "xdg"
    (xdg / "longcert").mkdir(parents=True)
    (xdg / "longcert" / "config.yaml").write_text("years: 7\n")
    assert settings.load({}, environ={**env, "XDG_CONFIG_HOME": str(xdg)}, cwd=tmp_path
                         ).years == 7
    assert settings.load({}, environ={**env, "XDG_CONFIG_HOME": "xdg"}, cwd=tmp_path
                         ).years == 3


@pytest.mark.parametrize(("text", "message"), [
    ("yeers: 3\n", "unknown setting 'yeers' from {path} (did you mean 'years'?)"),
    ("- 3\n", "{path} must be a mapping of setting: value"),
    ("years: [\n", "{path} is not YAML"),
    ("years: 900\n", "(from project {path})"),
    (b"\xff\xfe", "settings file {path} is not UTF-8 text"),
])
def test_a_bad_settings_file_is_one_line_naming_it(tmp_path: Path, text: str | bytes,
                                                    message: str) -> None:
    path = tmp_path / "longcert.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as err:
        settings.load({}, environ={"HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert message.format(path=path) in str(err.value)
    assert "\n" not in str(err.value)


# --- every input resolved and checked at the boundary (issue 22) ---------------------------


def test_relative_paths_are_absolute_once_and_never_option_like(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conf = load({"cache_dir": "-xcache", "builds_dir": "out"})
    assert conf.cache_dir == tmp_path / "-xcache" and conf.cache_dir.is_absolute()
    assert conf.builds_dir == tmp_path / "out"
    (tmp_path / "mine").mkdir()
    assert load({"patches_dir": "mine"}).patches_dir == tmp_path / "mine"


def test_a_relative_repo_is_one_remote_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--repo standin` in two directories is two repositories: two Go cache trust domains."""
    from longcert import build

    remotes = []
    for where in ("a", "b"):
        (tmp_path / where / "standin").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / where)
        remotes.append(load({"repo": "standin"}).repo)
    assert remotes == [str(tmp_path / "a" / "standin"), str(tmp_path / "b" / "standin")]
    volumes = [build.cache_volumes("b", "m", remote=r, shared=False, fresh_id=None).build
               for r in remotes]
    assert volumes[0] != volumes[1]
    monkeypatch.chdir(tmp_path / "a")
    assert load({"repo": "./standin/"}).repo == remotes[0]  # one repository, one spelling


# full-width and Arabic-Indic digits, which str.isdigit() accepts
@pytest.mark.parametrize("value", ["\uff11.\uff12\uff14.\uff11\uff11", "1.\uff124",
                                   "\u0663.1"])
def test_go_versions_are_ascii_digits(value: str) -> None:
    with pytest.raises(ConfigError, match="--go-version must be"):
        load({"go_version": value})


@pytest.mark.parametrize(("key", "value"), [
    ("repo", "https://[::1/kubernetes.git"),
    ("github_api_url", "https://[fe80::1/api"),
    ("go_download_url", "https://[::1/dl/"),
    ("go_download_url", "https://go.dev:http/dl/"),
])
def test_a_malformed_url_is_a_config_error(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"--{key.replace('_', '-')} is not a valid URL"):
        load({key: value})


def test_a_malformed_image_digest_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed digest"):
        load({"image": "golang@sha256:abc"})
    digest = "golang@sha256:" + "a" * 64
    assert load({"image": digest}).image == digest


@pytest.mark.parametrize("repo", ["alice:S3cr3tTok@git.example:k8s/kubernetes.git",
                                  "ssh://alice:S3cr3tTok@git.example/k8s/kubernetes.git"])
def test_a_password_in_an_ssh_remote_is_refused_unshown(repo: str) -> None:
    with pytest.raises(ConfigError) as err:
        load({"repo": repo})
    assert "S3cr3tTok" not in str(err.value) and "password" in str(err.value)


def test_an_ssh_user_is_kept() -> None:
    assert load({"repo": "ssh://alice@git.example/k8s.git"}).repo == (
        "ssh://alice@git.example/k8s.git")
    assert load({"repo": "alice@git.example:k8s.git"}).repo == "alice@git.example:k8s.git"
