"""Reading files from places a user (or an attacker) chose: a patch set directory, a settings
file, a copy of a cluster's /etc/kubernetes, a CA directory.

One rule for all of them: a regular file only (a FIFO would hang the read, a device such as
/dev/zero would never end), at most a stated size per kind of file (read no further than that),
and, inside a given directory, no symlink that leads out of it. Each refusal is one line naming
the file; nothing is read twice.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from longcert.errors import ConfigError, LongcertError

# Size bounds per kind of file, far above any real one.
MAX_PATCH_SET_BYTES = 1 << 20  # a patch set YAML: a few kB
MAX_SETTINGS_BYTES = 1 << 20  # a settings file: a few hundred bytes
MAX_PKI_FILE_BYTES = 1 << 20  # a certificate, key or kubeconfig: a few kB
MAX_MANIFEST_BYTES = 4 << 20  # a static pod manifest or kubeadm configuration

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def read_bytes(
    path: Path, *, limit: int, what: str, root: Path | None = None,
    error: type[LongcertError] = ConfigError,
) -> bytes:
    """The contents of ``path``, a regular file of at most ``limit`` bytes (``what`` names its
    kind in errors); with ``root``, ``path`` must not lead outside ``root`` through a symlink.
    ``error`` is raised, in one line, for anything else."""
    if root is not None:
        inside(path, root, what=what, error=error)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise error(f"{what} {path} is {kind}, not a regular file")
        if info.st_size > limit:
            raise error(f"{what} {path} is {info.st_size} bytes, more than the {limit} a "
                        f"{what} may be")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while being read
            raise error(f"{what} {path} is more than the {limit} bytes a {what} may be")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)


def read_text(
    path: Path, *, limit: int, what: str, root: Path | None = None,
    error: type[LongcertError] = ConfigError,
) -> str:
    """:func:`read_bytes` as UTF-8 text; invalid UTF-8 is the same one-line error."""
    data = read_bytes(path, limit=limit, what=what, root=root, error=error)
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def inside(path: Path, root: Path, *, what: str,
           error: type[LongcertError] = ConfigError) -> Path:
    """``path`` resolved, refused when a symlink takes it outside ``root`` (or loops)."""
    try:
        resolved = path.resolve(strict=False)
        base = root.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop, on older Pythons
        raise error(f"{what} {path} cannot be resolved: "
                    f"{_reason(exc) if isinstance(exc, OSError) else 'a symlink loop'}") from None
    if resolved != base and base not in resolved.parents:
        raise error(f"{what} {path} leads outside {root} (to {resolved})",
                    "a symlink in a given directory must stay inside it")
    return resolved


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink loop"
    return exc.strerror or type(exc).__name__
