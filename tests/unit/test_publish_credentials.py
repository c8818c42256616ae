"""Where publishing finds credentials: the Docker config (auths, credHelpers, credsStore) with
fake ``docker-credential-*`` helpers, and ``gh auth token`` with a fake ``gh``, both scripts in
the test's tmp directory on PATH. Nothing is looked up on this machine's real config."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from longcert import publish, settings
from longcert.errors import ConfigError, PublishError
from longcert.publish import credentials
from longcert.publish.http import Response

SECRET = "s3cret-from-the-helper"


def script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def helper(
    bin_dir: Path,
    name: str = "test",
    known: str = "registry.example:5000",
    user: str = "robot",
    secret: str = SECRET,
) -> Path:
    """A docker-credential-NAME that knows one server; it logs every server asked for."""
    log = bin_dir / f"{name}.asked"
    reply = json.dumps({"ServerURL": known, "Username": user, "Secret": secret})
    return script(
        bin_dir,
        f"docker-credential-{name}",
        f"""
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> '{log}'
if [ "$server" = '{known}' ]; then echo '{reply}'; exit 0; fi
echo "credentials not found in native keychain" >&2; exit 1
""",
    )


def asked(bin_dir: Path, name: str = "test") -> list[str]:
    log = bin_dir / f"{name}.asked"
    return log.read_text().split() if log.exists() else []


def env_for(tmp_path: Path, bin_dir: Path, config: dict[str, object]) -> dict[str, str]:
    (tmp_path / "docker").mkdir(exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(json.dumps(config))
    return {"DOCKER_CONFIG": str(tmp_path / "docker"), "PATH": str(bin_dir)}


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


# ------------------------------------------------------------------ the Docker config


def test_cred_helper_for_the_registry(tmp_path: Path, bin_dir: Path) -> None:
    helper(bin_dir)
    env = env_for(tmp_path, bin_dir, {"credHelpers": {"registry.example:5000": "test"}})
    assert publish.registry_credentials("registry.example:5000", env) == ("robot", SECRET)
    assert asked(bin_dir) == ["registry.example:5000"]  # the host on stdin, as docker does
    assert publish.registry_credentials("other.example", env) is None


def test_creds_store_then_the_auths_entry(tmp_path: Path, bin_dir: Path) -> None:
    helper(bin_dir, "store", known="https://registry.example:5000")
    env = env_for(
        tmp_path,
        bin_dir,
        {
            "credsStore": "store",
            "auths": {"registry.example:5000": {}, "plain.example": {"auth": auth("alice", "pw")}},
        },
    )
    assert publish.registry_credentials("registry.example:5000", env) == ("robot", SECRET)
    assert asked(bin_dir, "store") == ["registry.example:5000", "https://registry.example:5000"]
    # the store knows nothing of plain.example: its entry in the file is taken
    assert publish.registry_credentials("plain.example", env) == ("alice", "pw")


def test_the_environment_comes_first_and_no_helper_runs(tmp_path: Path, bin_dir: Path) -> None:
    helper(bin_dir)
    env = env_for(tmp_path, bin_dir, {"credsStore": "test"})
    env.update(OCI_USERNAME="ci", OCI_PASSWORD="from-env")
    assert publish.registry_credentials("registry.example:5000", env) == ("ci", "from-env")
    assert asked(bin_dir) == []


@pytest.mark.parametrize(
    "key",
    [
        "https://registry.example:5000",
        "http://registry.example:5000",
        "https://registry.example:5000/v1/",
        "REGISTRY.example:5000",
    ],
)
def test_auths_keys_as_docker_writes_them(tmp_path: Path, bin_dir: Path, key: str) -> None:
    env = env_for(tmp_path, bin_dir, {"auths": {key: {"auth": auth("bob", "pw:with:colons")}}})
    assert publish.registry_credentials("registry.example:5000", env) == ("bob", "pw:with:colons")
    assert publish.registry_credentials("registry.example:5001", env) is None


def test_docker_hub_is_found_under_its_index_url(tmp_path: Path, bin_dir: Path) -> None:
    helper(bin_dir, known=credentials.DOCKER_HUB_KEY)
    env = env_for(tmp_path, bin_dir, {"credsStore": "test"})
    assert publish.registry_credentials("registry-1.docker.io", env) == ("robot", SECRET)
    assert asked(bin_dir)[0] == credentials.DOCKER_HUB_KEY


def test_username_and_password_fields(tmp_path: Path, bin_dir: Path) -> None:
    env = env_for(tmp_path, bin_dir, {"auths": {"r.example": {"username": "u", "password": "p"}}})
    assert publish.registry_credentials("r.example", env) == ("u", "p")


@pytest.mark.parametrize(
    "config",
    [
        "not json",
        "[]",
        '{"auths": []}',
        '{"auths": {"r.example": "x"}}',
        '{"auths": {"r.example": {"auth": "%%%not base64"}}}',
        '{"auths": {"r.example": {"auth": "' + base64.b64encode(b"no-colon").decode() + '"}}}',
        '{"auths": {"r.example": {"auth": "' + base64.b64encode(b"u:line\nbreak").decode() + '"}}}',
        '{"credHelpers": {"r.example": 7}}',
    ],
)
def test_a_broken_config_is_no_credentials(tmp_path: Path, bin_dir: Path, config: str) -> None:
    (tmp_path / "config.json").write_text(config)
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": str(bin_dir)}
    assert publish.registry_credentials("r.example", env) is None


def test_home_docker_config_when_docker_config_is_unset(tmp_path: Path, bin_dir: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"r.example": {"auth": auth("home", "pw")}}})
    )
    assert publish.registry_credentials("r.example", {"HOME": str(tmp_path)}) == ("home", "pw")


@pytest.mark.parametrize("name", ["../../../bin/sh", "a/b", "", "-x", "x" * 100, "a b"])
def test_a_helper_name_that_is_no_name_runs_nothing(
    tmp_path: Path, bin_dir: Path, name: str
) -> None:
    script(bin_dir, "docker-credential-" + name.replace("/", "_"), f"touch '{tmp_path}/ran'\n")
    env = env_for(tmp_path, bin_dir, {"credHelpers": {"r.example": name}})
    assert publish.registry_credentials("r.example", env) is None
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    "reply",
    [
        "not json",
        "[]",
        '{"Username": "u"}',
        '{"Username": 1, "Secret": "s"}',
        '{"Username": "<token>", "Secret": "an-identity-token"}',
        '{"Username": "u", "Secret": ""}',
        '{"Username": "u", "Secret": "two\\nlines"}',
    ],
)
def test_a_helper_answer_that_is_not_credentials_is_not_taken(
    tmp_path: Path, bin_dir: Path, reply: str
) -> None:
    script(bin_dir, "docker-credential-odd", f"cat >/dev/null; echo '{reply}'\n")
    env = env_for(tmp_path, bin_dir, {"credsStore": "odd"})
    assert publish.registry_credentials("r.example", env) is None


def test_a_helper_that_hangs_is_stopped(tmp_path: Path, bin_dir: Path) -> None:
    script(bin_dir, "docker-credential-slow", "sleep 30\n")
    assert (
        credentials.credential_helper("slow", "r.example", {"PATH": str(bin_dir)}, timeout=0.5)
        is None
    )


def test_a_missing_helper_is_no_credentials(tmp_path: Path, bin_dir: Path) -> None:
    env = env_for(tmp_path, bin_dir, {"credsStore": "desktop"})
    assert publish.registry_credentials("r.example", env) is None


def test_the_registry_target_looks_credentials_up_only_when_asked(
    tmp_path: Path, bin_dir: Path
) -> None:
    helper(bin_dir, known="r.example")
    env = env_for(tmp_path, bin_dir, {"credHelpers": {"r.example": "test"}})
    target = publish.parse_target(
        "oci://r.example/tools/kubeadm", settings.load({}, environ={}), environ=env
    )
    assert isinstance(target, publish.OciTarget)
    assert asked(bin_dir) == []  # not yet: the registry has not asked
    assert target._creds() == ("robot", SECRET)
    assert target._creds() == ("robot", SECRET) and asked(bin_dir) == ["r.example"]  # once
    assert target.http.redact(f"robot:{SECRET}") == "***:***"


# ------------------------------------------------------------------ gh auth token

GH_TOKEN = "gho_" + "a1B2c3D4" * 4


def fake_gh(bin_dir: Path, out: str = GH_TOKEN, code: int = 0) -> Path:
    """A gh that prints ``out`` for `gh auth token --hostname github.com` and logs its args."""
    return script(
        bin_dir,
        "gh",
        f"""
echo "$@" >> '{bin_dir}/gh.args'
[ "$GH_PROMPT_DISABLED" = 1 ] || exit 3
if [ "$1 $2 $3 $4" = "auth token --hostname github.com" ]; then
  printf '%s\\n' '{out}'; exit {code}
fi
echo "no oauth token found for $4" >&2; exit 1
""",
    )


def conf() -> settings.Settings:
    return settings.load({}, environ={})


def test_gh_token_when_there_is_no_github_token(bin_dir: Path) -> None:
    fake_gh(bin_dir)
    target = publish.open_target(
        "github:o/r", conf(), dry_run=False, environ={"PATH": str(bin_dir)}
    )
    assert isinstance(target, publish.GitHubTarget)
    assert target._auth() == {"Authorization": f"Bearer {GH_TOKEN}"}
    assert target.token_source == "`gh auth token`"
    assert target.http.redact(f"x {GH_TOKEN} y") == "x *** y"
    assert (bin_dir / "gh.args").read_text().split() == [
        "auth",
        "token",
        "--hostname",
        "github.com",
    ]


def test_github_token_comes_first(bin_dir: Path) -> None:
    fake_gh(bin_dir)
    target = publish.open_target(
        "github:o/r",
        conf(),
        dry_run=False,
        environ={"PATH": str(bin_dir), "GITHUB_TOKEN": "from-env"},
    )
    assert isinstance(target, publish.GitHubTarget)
    assert target._auth() == {"Authorization": "Bearer from-env"}
    assert not (bin_dir / "gh.args").exists()


@pytest.mark.parametrize(
    ("api", "host"),
    [
        ("https://api.github.com", "github.com"),
        ("https://ghe.example.com/api/v3", "ghe.example.com"),
        ("https://api.acme.ghe.com", "acme.ghe.com"),
        ("https://ghe.example.com:8443/api/v3", "ghe.example.com:8443"),
    ],
)
def test_gh_is_asked_for_the_apis_host(api: str, host: str) -> None:
    assert publish.gh_hostname(api) == host


@pytest.mark.parametrize(
    ("out", "code"),
    [
        ("", 0),
        ("short", 0),
        ("token with spaces in it here", 0),
        (GH_TOKEN, 1),
        ("x" * 300, 0),
        (GH_TOKEN + "\nsecond line", 0),
    ],
)
def test_a_gh_answer_that_is_no_token_is_not_taken(bin_dir: Path, out: str, code: int) -> None:
    fake_gh(bin_dir, out, code)
    assert publish.gh_token("https://api.github.com", {"PATH": str(bin_dir)}) is None
    with pytest.raises(ConfigError, match="needs a token in the GITHUB_TOKEN"):
        publish.open_target("github:o/r", conf(), dry_run=False, environ={"PATH": str(bin_dir)})


def test_gh_not_logged_in_to_that_host(bin_dir: Path) -> None:
    fake_gh(bin_dir)
    assert publish.gh_token("https://ghe.example.com/api/v3", {"PATH": str(bin_dir)}) is None


def test_gh_that_hangs_is_stopped(bin_dir: Path) -> None:
    script(bin_dir, "gh", "sleep 30\n")
    assert publish.gh_token("https://api.github.com", {"PATH": str(bin_dir)}, timeout=0.5) is None


def test_no_gh_on_path() -> None:
    assert publish.gh_token("https://api.github.com", {"PATH": ""}) is None
    assert publish.gh_token("https://api.github.com", {}) is None


def test_a_gh_token_that_is_refused_names_its_source_not_itself(bin_dir: Path) -> None:
    fake_gh(bin_dir)
    target = publish.parse_target("github:o/r", conf(), environ={"PATH": str(bin_dir)})
    assert isinstance(target, publish.GitHubTarget)
    reply = Response(401, {}, json.dumps({"message": f"Bad credentials {GH_TOKEN}"}).encode())
    error = target._error("GET", "https://api.github.com/repos/o/r/releases", reply)
    assert isinstance(error, PublishError)
    assert "check `gh auth token`" in str(error) and GH_TOKEN not in str(error)


def test_a_gh_token_is_not_sent_over_plain_http_off_this_machine(bin_dir: Path) -> None:
    script(bin_dir, "gh", f"printf '%s\\n' '{GH_TOKEN}'\n")
    plain = settings.load({"github_api_url": "http://ghe.example.com/api/v3"}, environ={})
    with pytest.raises(PublishError, match="`gh auth token` would be sent over plain HTTP") as e:
        publish.parse_target("github:o/r", plain, environ={"PATH": str(bin_dir)})
    assert GH_TOKEN not in str(e.value)
