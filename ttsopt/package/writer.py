"""Atomic package writing: build in a temporary sibling directory, then move it into place.

A command that fails half-way (bad input, Ctrl-C, a failed gate) therefore never leaves a
half-written package where the user asked for one, and an existing package at the destination is
replaced only once the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from ttsopt.errors import TtsoptError
from ttsopt.package.manifest import MANIFEST_NAME, Manifest, sha256_file


class PackageWriter:
    """``with PackageWriter(out) as w: ...; w.write_manifest(m); w.commit()`` — nothing appears at ``out`` unless
    :meth:`commit` runs; leaving the block without it (or by an exception) removes the scratch directory."""

    def __init__(self, destination: str | Path):
        self.destination = Path(destination).absolute()
        if self.destination.exists() and not (self.destination / MANIFEST_NAME).is_file():
            if not self.destination.is_dir() or any(self.destination.iterdir()):
                raise TtsoptError(f"output {self.destination} exists and is not a ttsopt package: "
                                  "choose another -o or remove it")
        self.scratch: Path | None = None

    def __enter__(self) -> PackageWriter:
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix=f".{self.destination.name}.", dir=self.destination.parent))
        umask = os.umask(0)
        os.umask(umask)
        self.scratch.chmod(0o777 & ~umask)  # mkdtemp makes it private; a package is an ordinary directory
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
        old = None
        if self.destination.exists():
            old = self.destination.with_name(f".{self.destination.name}.old-{os.getpid()}")
            os.replace(self.destination, old)
        os.replace(self.scratch, self.destination)
        self.scratch = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.destination

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
