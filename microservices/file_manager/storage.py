"""Where the bytes live: one interface, a local-disk backend now (an S3-compatible one can follow).

Keys are made by the file manager from file ids (`ab/abcdef…`), never from a client's file name. A write goes to
a temporary file in the same file system and becomes visible under its key only by an atomic rename.
"""

from __future__ import annotations

import abc
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

READ_CHUNK_BYTES = 1024 * 1024


class StoredObjectMissing(Exception):
    """The metadata names a key whose bytes are not in storage."""


class PendingObject(abc.ABC):
    """An object being written; invisible until `commit`, gone after `discard`."""

    key: str

    @abc.abstractmethod
    async def write(self, data: bytes | bytearray) -> None:
        """Append `data`."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make the object durable and visible under its key, all at once."""

    @abc.abstractmethod
    async def discard(self) -> None:
        """Drop whatever was written (idempotent)."""


class Storage(abc.ABC):
    """The file manager's storage backend."""

    @abc.abstractmethod
    async def begin(self, key: str) -> PendingObject:
        """Start writing the object `key`."""

    @abc.abstractmethod
    def read(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of `key` from `start` up to, not including, `end` (the end of the object when None)."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove `key`; False when it was not there."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """True when `key` holds bytes."""

    @abc.abstractmethod
    async def sweep_incomplete(self, *, older_than_s: float) -> int:
        """Remove writes abandoned longer than `older_than_s` ago (a process killed mid-upload)."""

    @abc.abstractmethod
    async def keys(self, *, older_than_s: float) -> list[str]:
        """The keys of committed objects last written more than `older_than_s` ago."""


def storage_key(file_id: uuid.UUID) -> str:
    """The key of a file's bytes, two hex digits of fan-out so no directory grows huge."""
    return f"{file_id.hex[:2]}/{file_id.hex}"


class _LocalPending(PendingObject):
    def __init__(self, *, key: str, final: Path, temporary: Path, handle: BinaryIO) -> None:
        self.key = key
        self._final = final
        self._temporary = temporary
        self._handle: BinaryIO | None = handle

    async def write(self, data: bytes | bytearray) -> None:
        handle = self._handle
        if handle is None:
            raise RuntimeError("write after commit or discard")
        await anyio.to_thread.run_sync(handle.write, data)

    def _commit(self) -> None:
        handle = self._handle
        if handle is None:
            raise RuntimeError("commit after commit or discard")
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._handle = None
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._temporary, self._final)

    async def commit(self) -> None:
        await anyio.to_thread.run_sync(self._commit)

    def _discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(FileNotFoundError):
            self._temporary.unlink()

    async def discard(self) -> None:
        await anyio.to_thread.run_sync(self._discard)


class LocalStorage(Storage):
    """Files under one directory: `<root>/<key>`, uploads in progress under `<root>/.incoming/`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.incoming = self.root / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file that holds `key`; refuses any key that would leave the root."""
        path = (self.root / key).resolve()
        if self.root not in path.parents or path.is_relative_to(self.incoming):
            raise ValueError(f"{key!r} is not a storage key")
        return path

    async def begin(self, key: str) -> PendingObject:
        final = self.path(key)
        temporary = self.incoming / f"{uuid.uuid4().hex}.part"
        # Unbuffered: the upload already hands over large blocks, and a second buffer would only copy them.
        handle = await anyio.to_thread.run_sync(lambda: open(temporary, "xb", buffering=0))  # noqa: SIM115
        return _LocalPending(key=key, final=final, temporary=temporary, handle=handle)

    async def read(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            handle = await anyio.to_thread.run_sync(open, path, "rb")
        except FileNotFoundError as exc:
            raise StoredObjectMissing(key) from exc
        try:
            if start:
                handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                size = READ_CHUNK_BYTES if remaining is None else min(READ_CHUNK_BYTES, remaining)
                chunk = await anyio.to_thread.run_sync(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> bool:
        path = self.path(key)

        def unlink() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await anyio.to_thread.run_sync(unlink)

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self.path(key).is_file)

    async def keys(self, *, older_than_s: float) -> list[str]:
        def listing() -> list[str]:
            cutoff = time.time() - older_than_s
            found = []
            for path in self.root.glob("[0-9a-f][0-9a-f]/*"):
                with contextlib.suppress(FileNotFoundError):
                    if path.is_file() and path.stat().st_mtime < cutoff:
                        found.append(f"{path.parent.name}/{path.name}")
            return found

        return await anyio.to_thread.run_sync(listing)

    async def sweep_incomplete(self, *, older_than_s: float) -> int:
        def sweep() -> int:
            cutoff = time.time() - older_than_s
            removed = 0
            for leftover in self.incoming.glob("*.part"):
                with contextlib.suppress(FileNotFoundError):
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()
                        removed += 1
            return removed

        return await anyio.to_thread.run_sync(sweep)
