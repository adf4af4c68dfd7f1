"""A FileSource over local files, standing in for the file manager when an adapter is tested alone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path


class _Body:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def aiter_bytes(self, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        with self.path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk


class LocalFiles:
    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.opened: list[str] = []

    @contextlib.asynccontextmanager
    async def open_file(self, file_id: str, *, timeout_s: float = 600.0) -> AsyncIterator[_Body]:
        self.opened.append(file_id)
        yield _Body(self.files[file_id])

    async def signed_url(self, file_id: str) -> str:
        return self.files[file_id].resolve().as_uri()
