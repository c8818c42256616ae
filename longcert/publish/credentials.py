"""Where publishing finds credentials, besides the environment: the Docker config (its
``auths`` entries and its credential helpers) for a registry, ``gh auth token`` for GitHub.

Every answer is checked before it is used (helper names, JSON shape, sizes, characters), a
helper or ``gh`` that hangs is stopped after a bounded time, and nothing a helper prints is
shown or logged: a failed lookup is "no credentials here", and the caller's messages name only
where it looked. Whether a credential may then be sent anywhere is the caller's decision
(:func:`longcert.publish.http.credentials_allowed`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OCI_USER_ENV = "OCI_USERNAME"
OCI_PASSWORD_ENV = "OCI_PASSWORD"
HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT = 30.0  # a helper may wait for a keychain to unlock, not for ever
GH_TIMEOUT = 15.0
MAX_CONFIG_BYTES = 1 << 20
MAX_HELPER_REPLY = 64 << 10
# What ``docker login`` stores Docker Hub's entry under, whatever name the registry is given by.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_GH_TOKEN = re.compile(r"[A-Za-z0-9_]{20,255}")


def _printable(text: str, limit: int = 4096) -> bool:
    """A one-line value with no control characters, of sane length: what a user name, password
    or token is. Anything else is not taken (and not shown)."""
    return 0 < len(text) <= limit and not any(ord(c) < 32 or ord(c) == 127 for c in text)


def docker_config_path(environ: Mapping[str, str]) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (HOME from ``environ``)."""
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]).expanduser() / "config.json"
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def _docker_config(environ: Mapping[str, str]) -> dict[str, Any]:
    path = docker_config_path(environ)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        return {}
    if len(raw) > MAX_CONFIG_BYTES:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _registry_host(key: str) -> str:
    """A Docker config key (``host:port``, ``https://host/v1/``...) as ``host[:port]``, lower
    case, the way docker itself compares them."""
    text = key.strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc
    return text.split("/", 1)[0].lower()


def _keys_for(host: str) -> list[str]:
    """The names ``host``'s entry may be stored under, most exact first."""
    keys = [host, f"https://{host}", f"http://{host}"]
    if host.lower() in DOCKER_HUB_HOSTS:
        keys.insert(0, DOCKER_HUB_KEY)
    return keys


def _lookup(table: object, host: str) -> tuple[str, Any] | None:
    """(key, value) of ``host``'s entry in ``auths`` or ``credHelpers``: an exact key first,
    then any key naming the same host[:port]."""
    if not isinstance(table, dict):
        return None
    for key in _keys_for(host):
        if key in table:
            return key, table[key]
    wanted = {_registry_host(k) for k in _keys_for(host)}
    for key, value in table.items():
        if isinstance(key, str) and _registry_host(key) in wanted:
            return key, value
    return None


def _from_auth_entry(entry: object) -> tuple[str, str] | None:
    """An ``auths`` entry's ``auth`` (base64 of user:password), or its username and password."""
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if sep and _printable(user) and _printable(password):
            return user, password
        return None
    name, secret = entry.get("username"), entry.get("password")
    if (
        isinstance(name, str)
        and isinstance(secret, str)
        and _printable(name)
        and _printable(secret)
    ):
        return name, secret
    return None


def credential_helper(
    name: str, server: str, environ: Mapping[str, str], timeout: float = HELPER_TIMEOUT
) -> tuple[str, str] | None:
    """``docker-credential-NAME get`` with ``server`` on stdin, as docker runs it: (Username,
    Secret) from its JSON reply, or None when the helper is missing, fails, takes longer than
    ``timeout``, or answers anything else. An identity token (Username ``<token>``) is an
    OAuth refresh token longcert cannot use: None too. Nothing the helper prints is shown."""
    if not _HELPER_NAME.fullmatch(name) or not _printable(server, 1024):
        return None  # "../../bin/sh" and the like name no helper
    program = shutil.which(HELPER_PREFIX + name, path=environ.get("PATH", ""))
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=timeout,
            env={**os.environ, **environ},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or len(done.stdout) > MAX_HELPER_REPLY:
        return None
    try:
        reply = json.loads(done.stdout)
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    user, secret = reply.get("Username"), reply.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str) or user == "<token>":
        return None
    if not _printable(user) or not _printable(secret):
        return None
    return user, secret


def docker_credentials(host: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``host``'s credentials from the Docker config, as ``docker login`` left them: the
    registry's own helper (``credHelpers``), else the default store (``credsStore``), else
    the ``auths`` entry written in the file itself."""
    config = _docker_config(environ)
    helpers = _lookup(config.get("credHelpers"), host)
    store = config.get("credsStore")
    names = [helpers[1]] if helpers and isinstance(helpers[1], str) else []
    if isinstance(store, str) and store:
        names.append(store)
    # The name docker would hand the helper (the config's key, or the host; Docker Hub's URL),
    # then the https:// form some logins store: a few runs of the helper at most.
    servers = list(dict.fromkeys(([helpers[0]] if helpers else []) + _keys_for(host)[:2]))
    for name in names:
        for server in servers:
            found = credential_helper(name, server, environ)
            if found is not None:
                return found
    entry = _lookup(config.get("auths"), host)
    return _from_auth_entry(entry[1]) if entry else None


def registry_credentials(host: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """OCI_USERNAME/OCI_PASSWORD, else the Docker config (:func:`docker_credentials`)."""
    if environ.get(OCI_USER_ENV) and environ.get(OCI_PASSWORD_ENV):
        return environ[OCI_USER_ENV], environ[OCI_PASSWORD_ENV]
    return docker_credentials(host, environ)


def gh_hostname(api_url: str) -> str:
    """The host ``gh`` knows a GitHub API by: github.com for api.github.com, NAME.ghe.com for
    api.NAME.ghe.com, the host[:port] of a GitHub Enterprise Server's https://HOST/api/v3."""
    netloc = urllib.parse.urlsplit(api_url).netloc.rpartition("@")[2].lower()
    if netloc == "api.github.com":
        return "github.com"
    if netloc.startswith("api.") and netloc.endswith(".ghe.com"):
        return netloc.removeprefix("api.")
    return netloc


def gh_token(api_url: str, environ: Mapping[str, str], timeout: float = GH_TIMEOUT) -> str | None:
    """``gh auth token --hostname HOST`` when ``gh`` is on PATH: the token of ``gh auth
    login`` for the API's host, or None (no gh, not logged in, too slow, or an answer that is
    not a token). Never prompts; its output is never shown."""
    program = shutil.which("gh", path=environ.get("PATH", ""))
    host = gh_hostname(api_url)
    if program is None or not host or not _printable(host, 255):
        return None
    try:
        done = subprocess.run(
            [program, "auth", "token", "--hostname", host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env={
                **os.environ,
                **environ,
                "GH_PROMPT_DISABLED": "1",
                "GH_NO_UPDATE_NOTIFIER": "1",
                "NO_COLOR": "1",
            },
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or len(done.stdout) > 4096:
        return None
    try:
        token = done.stdout.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return token if _GH_TOKEN.fullmatch(token) else None
