"""Atomic package writing: build in a scratch sibling directory, then move it into place.

A command that fails half-way (bad input, Ctrl-C, SIGTERM, a failed gate) therefore never leaves a
half-written package where the user asked for one, and an existing package at the destination is
replaced only once the new one is complete (and only when the caller asked for that: ``replace``).

Scratch directories are named ``.NAME.ttsopt-PID-XXXXXXXX`` beside the destination: one left by a
process that was killed outright (SIGKILL, a power cut) can be told from one still being written, and
is removed by the next writer in the same directory (a real-size package is hundreds of MB).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ttsopt.errors import TtsoptError
from ttsopt.package.manifest import MANIFEST_NAME, Manifest, sha256_file

_SCRATCH = re.compile(r"^\..+\.ttsopt-(?P<pid>\d+)-")


def is_package(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file()


def check_destination(destination: str | Path, *, replace: bool, is_ours: Callable[[Path], bool] = is_package,
                      what: str = "ttsopt package") -> Path:
    """``destination`` as an absolute path once it is known to be writable, before any work starts.

    Refused: something that is not ours there (never overwritten), ours without ``replace`` (--force), and a
    place nothing can be written to (a read-only directory or file system, a file where a directory must be)."""
    destination = Path(destination).absolute()
    if destination.exists():
        if destination.is_dir() and not any(destination.iterdir()):
            pass  # an empty directory: nothing to lose
        elif not destination.is_dir() or not is_ours(destination):
            raise TtsoptError(f"output {destination} exists and is not a {what}: choose another -o or remove it")
        elif not replace:
            raise TtsoptError(f"output {destination} already holds a {what}: pass --force to replace it, or choose another -o")
    check_writable_directory(destination.parent, destination)
    return destination


def check_writable_directory(directory: Path, output: Path) -> None:
    """Raise unless a file can be created in ``directory`` (or, where it does not exist yet, in its nearest
    existing ancestor, where it would be made): tried with a probe, because permission bits say nothing about
    read-only file systems, and nothing for root."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise TtsoptError(f"cannot write {output}: {existing} is a file, not a directory: choose another -o")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ttsopt-probe-", dir=existing))
    except OSError as exc:
        raise TtsoptError(f"cannot write {output}: {existing} is not writable ({exc.strerror}): "
                          "choose another -o") from None


def remove_stale_scratch(directory: Path) -> list[Path]:
    """Remove the scratch directories in ``directory`` whose writing process is gone; returns them."""
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _SCRATCH.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return True  # cannot tell: keep it
    return True


def scratch_directory(destination: Path) -> Path:
    """A new, empty scratch directory beside ``destination`` (stale ones of dead processes removed first)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(destination.parent)
    scratch = Path(tempfile.mkdtemp(prefix=f".{destination.name}.ttsopt-{os.getpid()}-", dir=destination.parent))
    umask = os.umask(0)
    os.umask(umask)
    scratch.chmod(0o777 & ~umask)  # mkdtemp makes it private; a package is an ordinary directory
    return scratch


def move_into_place(scratch: Path, destination: Path) -> None:
    """Replace ``destination`` by ``scratch`` (the old one is renamed away first, then removed)."""
    old = None
    if destination.exists():
        old = destination.with_name(f".{destination.name}.ttsopt-{os.getpid()}-old")
        os.replace(destination, old)
    os.replace(scratch, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class PackageWriter:
    """``with PackageWriter(out) as w: ...; w.write_manifest(m); w.commit()`` — nothing appears at ``out`` unless
    :meth:`commit` runs; leaving the block without it (or by an exception) removes the scratch directory.
    An existing package at ``out`` is refused unless ``replace``."""

    def __init__(self, destination: str | Path, replace: bool = False):
        self.destination = check_destination(destination, replace=replace)
        self.scratch: Path | None = None

    def __enter__(self) -> PackageWriter:
        self.scratch = scratch_directory(self.destination)
        return self

    def path(self, relative: str) -> Path:
        assert self.scratch is not None, "use PackageWriter as a context manager"
        return self.scratch / relative

    def copy_in(self, source: Path, relative: str) -> Path:
        """Copy a file into the package as ``relative`` (folders made as needed: payloads such as ``g2pw/``)."""
        destination = self.path(relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        return destination

    def write_manifest(self, manifest: Manifest) -> None:
        """Hash every payload file into ``manifest.files`` and write the manifest into the scratch
        directory, so the package can be opened (and verified) before it is committed."""
        assert self.scratch is not None
        manifest.files = {
            str(file.relative_to(self.scratch)): sha256_file(file)
            for file in sorted(self.scratch.rglob("*")) if file.is_file() and file.name != MANIFEST_NAME
        }
        (self.scratch / MANIFEST_NAME).write_text(manifest.to_json())

    def commit(self) -> Path:
        """Move the finished package into place (replacing an older package there)."""
        assert self.scratch is not None and (self.scratch / MANIFEST_NAME).is_file(), "write_manifest first"
        move_into_place(self.scratch, self.destination)
        self.scratch = None
        return self.destination

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
