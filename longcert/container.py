"""The Docker boundary: with :mod:`longcert.imagestore` (the engine's images, whose names it
hands on), the only module that imports docker.

``BuildContainer`` is a context manager around one long-lived container: it pings the engine,
makes sure the image is there (pulling only if missing), mounts the tree and the named cache
volumes, runs commands through the low-level exec API (argument lists, never shell strings),
streams their output to a log file, and removes the container on every exit path.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import io
import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions
from docker.types import Mount

from longcert import runs
from longcert.errors import BuildError, EngineError, ImageError
from longcert.imagestore import ImageInfo as ImageInfo
from longcert.imagestore import _missing_image_hint, _reason
from longcert.imagestore import ensure_image as ensure_image
from longcert.imagestore import image_id as image_id
from longcert.imagestore import import_rootfs as import_rootfs
from longcert.imagestore import inspect_image as inspect_image
from longcert.imagestore import local_image_names as local_image_names
from longcert.imagestore import runnable_image as runnable_image
from longcert.imagestore import split_reference as split_reference

LABEL = "org.longcert"


@dataclass(frozen=True)
class Limits:
    """What a build or verify container may use. Every capability is dropped but the three a
    root build user needs to manage files it does not own in the cache volumes; no new
    privileges (setuid binaries in the image gain nothing); bounded processes and memory."""

    memory: str = "8g"
    pids: int = 4096
    cap_add: tuple[str, ...] = ("CHOWN", "DAC_OVERRIDE", "FOWNER")

    def unprivileged(self) -> Limits:
        """The same bounds with no capability at all: for containers that run a binary that
        may come from elsewhere (verify, renew-check, the kit's image list)."""
        return Limits(self.memory, self.pids, ())

    def create_options(self) -> dict[str, Any]:
        return {
            "cap_drop": ["ALL"],
            "cap_add": list(self.cap_add),
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.pids,
            "mem_limit": self.memory,
            "memswap_limit": self.memory,  # no swap beyond the limit
        }


# The user a container that runs a kubeadm from elsewhere runs as when longcert runs as root
# (nobody): the binary gets no root inside the container, and no capabilities either.
UNPRIVILEGED_UID = 65534


@dataclass(frozen=True)
class Sandbox:
    """Who runs a possibly foreign kubeadm: ``user`` for the container; ``owner`` the uid the
    directories it writes must belong to (None: the invoking user's own, as they are)."""

    user: str
    owner: int | None

    def give(self, *paths: Path) -> None:
        """Make ``paths`` (recursively) the sandbox user's, so it can write there."""
        if self.owner is None:
            return
        for path in paths:
            os.chown(path, self.owner, self.owner, follow_symlinks=False)
            for parent, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(parent, name), self.owner, self.owner,
                             follow_symlinks=False)


def sandbox() -> Sandbox:
    """The invoking user (uid:gid), or nobody when that is root."""
    if os.getuid() == 0:
        return Sandbox(f"{UNPRIVILEGED_UID}:{UNPRIVILEGED_UID}", UNPRIVILEGED_UID)
    return Sandbox(f"{os.getuid()}:{os.getgid()}", None)


def _labels(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every container longcert makes: its marker label and the run that made it (so a sweep
    after that run's death removes it, and nothing of a live run)."""
    labels = {LABEL: "1", **(extra or {})}
    if runs.current_id():
        labels[runs.RUN_LABEL] = runs.current_id()
        # when the run ends, however it ends, whatever carries its label goes too
        runs.at_exit(_remove_own_containers)
    return labels


def _remove_own_containers(run_id: str) -> None:
    remove_run_containers(connect(), run_id)


def remove_run_containers(client: docker.DockerClient, run_id: str) -> list[str]:
    """Remove every container and volume the run ``run_id`` made; their names."""
    removed = []
    for box in client.containers.list(all=True, filters={"label": f"{runs.RUN_LABEL}={run_id}"}):
        with contextlib.suppress(docker.errors.NotFound):
            box.remove(force=True)
        removed.append(f"container {box.short_id} ({box.labels.get('org.longcert.purpose', '')})")
    for volume in client.volumes.list(filters={"label": f"{runs.RUN_LABEL}={run_id}"}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
    return removed


def is_cache_volume(name: str, base_names: Sequence[str]) -> bool:
    """Whether ``name`` is one of longcert's Go cache volumes: a configured name as is (a
    volume the user named) or with the 12-hex-digit suffix of a remote (build.cache_volumes)."""
    return any(
        name == base or re.fullmatch(re.escape(base) + r"-[0-9a-f]{12}", name) is not None
        for base in base_names
    )


def remove_cache_volumes(
    client: docker.DockerClient, base_names: Sequence[str], *,
    only: Collection[str] | None = None, dry_run: bool = False,
) -> tuple[list[str], list[str]]:
    """Remove the Go cache volumes of every remote (:func:`is_cache_volume`), or with ``only``
    just those of these names; one a container uses (a build running now) is left. With
    ``dry_run`` nothing is removed: what would be. Returns (removed, in use)."""
    removed: list[str] = []
    in_use: list[str] = []
    try:
        volumes = client.volumes.list()
    except docker.errors.DockerException as exc:
        raise EngineError(f"cannot list volumes: {_reason(exc)}") from exc
    for volume in sorted(volumes, key=lambda v: str(v.name)):
        if not is_cache_volume(str(volume.name), base_names):
            continue
        if only is not None and str(volume.name) not in only:
            continue
        if dry_run:
            users = client.containers.list(all=True, filters={"volume": str(volume.name)})
            (in_use if users else removed).append(str(volume.name))
            continue
        try:
            volume.remove()
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise EngineError(f"cannot remove volume {volume.name}: {_reason(exc)}") from exc
            in_use.append(str(volume.name))
            continue
        removed.append(str(volume.name))
    return removed, in_use


def create_volume(client: docker.DockerClient, name: str, purpose: str) -> None:
    """A named volume labelled with this run, so a sweep removes it if the run dies."""
    try:
        client.volumes.create(name, labels=_labels({"org.longcert.purpose": purpose}))
    except docker.errors.APIError as exc:
        raise BuildError(f"cannot create volume {name}: {_reason(exc)}") from exc


def remove_volume(client: docker.DockerClient, name: str) -> None:
    """Remove a volume this run made (gone already is fine)."""
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(name).remove(force=True)


LineFn = Callable[[str], None]


@dataclass(frozen=True)
class BindMount:
    """A host path or a named volume mounted into the container."""

    target: str
    source: str
    volume: bool = False
    read_only: bool = False

    def to_docker(self) -> Mount:
        return Mount(
            target=self.target,
            source=self.source,
            type="volume" if self.volume else "bind",
            read_only=self.read_only,
        )


# One client per engine address for the process: docker.from_env asks the engine for its API
# version each time, and a run connects in several stages (and verification threads).
_clients: dict[tuple[str, ...], docker.DockerClient] = {}


def connect() -> docker.DockerClient:
    """A client whose engine answered a ping, or EngineError saying how to start one."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    key = tuple(os.environ.get(name, "") for name in (
        "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG"))
    try:
        client = _clients.get(key) or docker.from_env(timeout=600)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        _clients.pop(key, None)
        raise EngineError(
            f"no Docker engine answers at {where}",
            "start dockerd (or Docker Desktop) or point DOCKER_HOST at a running engine",
        ) from exc
    _clients[key] = client
    return client


def engine_platform(client: docker.DockerClient) -> str:
    """``os/architecture`` the engine runs natively (Go's names, e.g. linux/amd64)."""
    try:
        info = client.version()
    except docker.errors.DockerException as exc:
        raise EngineError(f"the engine did not say its platform: {_reason(exc)}") from exc
    return f"{info.get('Os', 'linux')}/{info.get('Arch', '?')}"


def run_once(
    client: docker.DockerClient,
    image: str,
    argv: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    timeout: int = 120,
) -> tuple[int, str]:
    """Run ``argv`` in a throwaway container of ``image`` with no network; (exit code, output).

    The container is removed on every path. A command the image cannot start (no such file)
    is exit code 127 with the engine's reason as output.
    """
    box = None
    try:
        box = client.containers.create(
            image,
            command=list(argv),
            entrypoint=[],
            labels=_labels(labels),
            network_mode="none",
            working_dir="/",
            **Limits().create_options(),
        )
        try:
            box.start()
        except docker.errors.APIError as exc:
            return 127, _reason(exc)
        code = box.wait(timeout=timeout).get("StatusCode", -1)
        return int(code), box.logs().decode("utf-8", errors="replace")
    except docker.errors.ImageNotFound as exc:
        raise ImageError(f"image {image} is not present") from exc
    except docker.errors.DockerException as exc:
        raise EngineError(f"running {argv[0]} in {image} failed: {_reason(exc)}") from exc
    except OSError as exc:  # requests' read timeout
        raise EngineError(f"{argv[0]} in {image} did not finish in {timeout} s") from exc
    finally:
        if box is not None:
            with contextlib.suppress(docker.errors.DockerException):
                box.remove(force=True)


class BuildContainer:
    """One container from ``image`` that stays up while commands are executed in it."""

    def __init__(
        self,
        client: docker.DockerClient,
        image: str,
        *,
        mounts: Sequence[BindMount] = (),
        environment: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        network: bool = False,
        tail_lines: int = 40,
        limits: Limits | None = None,
        user: str = "",
    ) -> None:
        self._client = client
        self._limits = limits or Limits()
        self._user = user
        self.image = image
        self._mounts = list(mounts)
        self._environment = dict(environment or {})
        self._labels = _labels(labels)
        self._log_path = log_path
        self._network = network
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._log: IO[str] | None = None
        self._container: Any = None

    def __enter__(self) -> BuildContainer:
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("a", encoding="utf-8", buffering=1)  # tail -f works
        try:
            self._container = self._client.containers.create(
                self.image,
                command=["sleep", "infinity"],
                entrypoint=[],
                mounts=[m.to_docker() for m in self._mounts],
                environment=self._environment,
                labels=self._labels,
                network_mode="bridge" if self._network else "none",
                working_dir="/",
                detach=True,
                user=self._user or None,
                **self._limits.create_options(),
            )
            self._container.start()
        except BaseException as exc:
            self._cleanup()
            if isinstance(exc, docker.errors.ImageNotFound):
                raise ImageError(f"image {self.image} is not present",
                                 _missing_image_hint(self.image)) from exc
            if isinstance(exc, docker.errors.DockerException):
                raise EngineError(
                    f"cannot start a container from {self.image}: {_reason(exc)}"
                ) from exc
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._container is not None:
            # Already gone is fine: there is nothing more to remove.
            with contextlib.suppress(docker.errors.DockerException):
                self._container.remove(force=True, v=False)
            self._container = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Remove the container now, from any thread: a command running in it ends (its
        ``run`` raises EngineError); the with-block's exit still cleans up as usual."""
        box = self._container
        if box is not None:
            with contextlib.suppress(docker.errors.DockerException):
                box.remove(force=True, v=False)

    @property
    def tail(self) -> list[str]:
        """The last lines any command printed (for error messages)."""
        return list(self._tail)

    def _write(self, line: str, on_line: LineFn | None) -> None:
        self._tail.append(line)
        if self._log is not None:
            self._log.write(line + "\n")
        if on_line is not None:
            on_line(line)

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str = "",
        workdir: str = "/",
        environment: Mapping[str, str] | None = None,
        on_line: LineFn | None = None,
    ) -> int:
        """Run ``argv`` (a list, never a shell string) and return its exit code."""
        if self._log is not None:
            self._log.write(f"$ {' '.join(argv)}\n")
        code = self._exec(argv, lambda line: self._write(line, on_line),
                          user=user, workdir=workdir, environment=environment)
        if self._log is not None:
            self._log.flush()
        return code

    def _exec(
        self,
        argv: Sequence[str],
        sink: LineFn,
        *,
        user: str = "",
        workdir: str = "/",
        environment: Mapping[str, str] | None = None,
    ) -> int:
        """Run ``argv`` in the container; every line of its output to ``sink``."""
        if self._container is None:
            raise RuntimeError("BuildContainer used outside its with-block")
        api = self._client.api
        try:
            exec_id = api.exec_create(
                self._container.id,
                list(argv),
                environment=dict(environment or {}),
                workdir=workdir,
                user=user,
                stdout=True,
                stderr=True,
            )["Id"]
            pending = ""
            for chunk in api.exec_start(exec_id, stream=True):
                pending += chunk.decode("utf-8", errors="replace")
                *lines, pending = pending.split("\n")
                for line in lines:
                    sink(line.rstrip("\r"))
            if pending:
                sink(pending)
            code = api.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.DockerException as exc:
            raise EngineError(f"the engine failed while running {argv[0]}: {_reason(exc)}") from exc
        return int(code if code is not None else -1)

    def capture_together(
        self,
        commands: Sequence[Sequence[str]],
        *,
        on_line: LineFn | None = None,
        user: str = "",
        workdir: str = "/",
        environment: Mapping[str, str] | None = None,
    ) -> list[tuple[int, str]]:
        """Run ``commands`` at once, each in its own exec, and return (exit code, output) of
        each. Their output reaches the log, the tail and ``on_line`` afterwards, command by
        command, exactly as running them one after the other gives; the first command (in
        order) whose exec raised raises here, after all of them ended."""
        outputs: list[list[str]] = [[] for _ in commands]
        pool = concurrent.futures.ThreadPoolExecutor(
            max(1, len(commands)), thread_name_prefix="longcert-exec"
        )
        try:
            futures = [pool.submit(self._exec, argv, outputs[i].append, user=user,
                                   workdir=workdir, environment=environment)
                       for i, argv in enumerate(commands)]
            # in short waits: a stop that arrives without interrupting a blocked wait (as
            # _thread.interrupt_main, or a signal on a platform where waits are not
            # interruptible) is still acted on within a fraction of a second
            while concurrent.futures.wait(futures, timeout=0.2).not_done:
                pass
        except BaseException:
            # Ctrl-C or SIGTERM while they run: the commands end with the container, so the
            # stop is not held up until they finish on their own.
            self.kill()
            raise
        finally:
            pool.shutdown(wait=True)
        results = []
        for argv, lines, future in zip(commands, outputs, futures, strict=True):
            if self._log is not None:
                self._log.write(f"$ {' '.join(argv)}\n")
            for line in lines:
                self._write(line, on_line)
            code = future.result()
            results.append((code, "\n".join(lines)))
        if self._log is not None:
            self._log.flush()
        return results

    def check(self, argv: Sequence[str], *, what: str, **kwargs: Any) -> None:
        """Run ``argv``; BuildError with the output's tail when it fails."""
        code = self.run(argv, **kwargs)
        if code != 0:
            tail = "\n".join(self.tail[-15:])
            raise BuildError(f"{what} failed (exit {code}); last output:\n{tail}")

    def capture(
        self, argv: Sequence[str], *, on_line: LineFn | None = None, **kwargs: Any
    ) -> tuple[int, str]:
        """Run ``argv`` and return (exit code, its output); lines also go to ``on_line``."""
        lines: list[str] = []

        def keep(line: str) -> None:
            lines.append(line)
            if on_line is not None:
                on_line(line)

        code = self.run(argv, on_line=keep, **kwargs)
        return code, "\n".join(lines)


def label_change(key: str, value: str) -> str:
    """A Dockerfile ``LABEL`` change for a commit, the value quoted: unquoted, a value with a
    space (a --go-archive path) would be read as two labels or refused."""
    return f"LABEL {key}={json.dumps(value, ensure_ascii=False)}"


def commit_with_archive(
    client: docker.DockerClient,
    base: str,
    archive: IO[bytes] | bytes,
    repository: str,
    tag: str,
    changes: Iterable[str],
    labels: Mapping[str, str],
) -> str:
    """Unpack a tar archive into a container of ``base`` at / and commit it as a new image."""
    container = None
    try:
        container = client.containers.create(
            base,
            command=["true"],
            entrypoint=[],
            network_mode="none",
            labels=_labels(labels),
        )
        data = archive if isinstance(archive, bytes) else archive.read()
        if not container.put_archive("/", io.BytesIO(data).getvalue()):
            raise ImageError(f"copying the toolchain into {base} failed")
        image = container.commit(
            repository=repository,
            tag=tag,
            changes=list(changes) + [label_change(k, v) for k, v in labels.items()],
        )
        return str(image.id)
    except docker.errors.DockerException as exc:
        raise ImageError(f"building {repository}:{tag} failed: {_reason(exc)}") from exc
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)


@dataclass(frozen=True)
class CommitSpec:
    """How to commit a container: name and Dockerfile-style changes."""

    repository: str
    tag: str
    changes: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()


def commit_after_command(
    client: docker.DockerClient,
    base: str,
    argv: Sequence[str],
    decide: Callable[[str], CommitSpec],
    *,
    network: bool = True,
) -> str:
    """Run ``argv`` in a container of ``base``; when it succeeds, ``decide`` (given its output)
    names the image, which is committed. The container is removed on every path."""
    box = None
    try:
        box = client.containers.create(
            base,
            command=list(argv),
            entrypoint=[],
            labels=_labels(),
            network_mode="bridge" if network else "none",
        )
        box.start()
        code = box.wait().get("StatusCode", -1)
        output = box.logs().decode("utf-8", errors="replace")
        if code != 0:
            tail = " / ".join(output.strip().splitlines()[-3:])
            raise ImageError(f"{argv[0]} in {base} failed (exit {code}): {tail}")
        spec = decide(output)
        changes = list(spec.changes) + [label_change(k, v) for k, v in spec.labels]
        image = box.commit(repository=spec.repository, tag=spec.tag, changes=changes)
        return str(image.id)
    except docker.errors.DockerException as exc:
        raise ImageError(f"building an image on {base} failed: {_reason(exc)}") from exc
    finally:
        if box is not None:
            with contextlib.suppress(docker.errors.DockerException):
                box.remove(force=True)
