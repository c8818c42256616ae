"""Publish to a directory: ``root/<build-id>/``, on local disk or a mounted share.

A new build is copied into a temporary directory beside it and renamed into place, so readers
see all of it or nothing; a directory completed partly by hand gets the missing files, each
written aside and renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from longcert import runs
from longcert.build import sha256_file
from longcert.errors import PublishError
from longcert.publish.build import Build, BuildFile, BuildRef
from longcert.publish.plan import Action, ProgressFn, PublishResult, quiet
from longcert.publish.signing import Signer


@dataclass(frozen=True)
class DirectoryTarget:
    """``root/<build-id>/``: a local directory or a mounted share."""

    root: Path
    signer: Signer | None = None

    @property
    def name(self) -> str:
        return f"dir:{self.root}"

    def has(self, build: BuildRef) -> bool:
        return (self.root / build.build_id / "manifest.json").is_file()

    def plan(self, build: Build) -> list[Action]:
        dest = self.root / build.build_id
        actions = []
        for item in build.files:
            existing = dest / item.name
            if not existing.exists():
                actions.append(Action("copy", item.name, str(dest), item.size))
                continue
            have = sha256_file(existing) if existing.is_file() else "not a file"
            if have != item.sha256:
                raise PublishError(
                    f"{existing} already exists and differs from this build's {item.name} "
                    f"(sha256 {have[:16]}, this build {item.sha256[:16]})",
                    "a published file is never overwritten: remove it by hand, or publish "
                    "to another directory",
                )
            actions.append(
                Action("skip", item.name, str(dest), item.size, "already there, same sha256")
            )
        return actions

    def push(
        self, build: Build, dry_run: bool = False, progress: ProgressFn | None = None
    ) -> PublishResult:
        say = progress or quiet
        dest = self.root / build.build_id
        if not self.root.exists() and not self.root.parent.is_dir():
            raise PublishError(
                f"cannot publish to {self.root}: {self.root.parent} does not exist",
                "create it, or mount the share first",
            )
        actions = self.plan(build)
        for action in actions:
            say(action.describe(dry_run))
        if dry_run or all(a.verb == "skip" for a in actions):
            return PublishResult.of(self.name, str(dest), actions, dry_run)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                # A directory someone completed partly by hand: add what is missing, one file
                # at a time, each written aside and renamed; manifest.json comes last.
                for item in build.files:
                    if not (dest / item.name).exists():
                        _copy_atomic(item, dest)
            else:
                # named with the run id, in a directory the run notes: a sweep after a
                # kill -9 removes it
                runs.note_builds_dir(self.root)
                staging = Path(tempfile.mkdtemp(prefix=runs.tagged(f".{build.build_id}.staging-"),
                                                dir=self.root))
                try:
                    for item in build.files:
                        _copy_checked(item, staging / item.name)
                    staging.chmod(0o755)
                    os.rename(staging, dest)  # atomic: readers see all of it or nothing
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
        except OSError as exc:
            raise PublishError(
                f"cannot write {dest}: {exc.strerror or exc}",
                "check that the directory is writable and has space",
            ) from exc
        return PublishResult.of(self.name, str(dest), actions, dry_run)


def _copy_checked(item: BuildFile, dest: Path) -> None:
    shutil.copyfile(item.path, dest)
    dest.chmod(0o755 if item.platform else 0o644)
    with open(dest, "rb") as handle:
        os.fsync(handle.fileno())
    if sha256_file(dest) != item.sha256:
        raise PublishError(
            f"{dest} does not match {item.path} after copying",
            "the target storage lost data; check it and publish again",
        )


def _copy_atomic(item: BuildFile, dest_dir: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{item.name}.", dir=dest_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy_checked(item, tmp)
        os.replace(tmp, dest_dir / item.name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
