"""The file manager in process, on its migrated test database, with storage in a temporary directory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from microservices.file_manager.config import Settings
from microservices.file_manager.main import build_app
from tests.harness import TokenFactory, app_client

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = DATA / "seed-samples" / "chr20.tiny.100snps.vcf.gz"
SMALL = DATA / "seed-samples" / "chr20.small.1000snps.vcf.gz"
HG38 = DATA / "seed-samples" / "chr22.hg38.7samples.phased.vcf.gz"
TARGET = DATA / "sim-1mb" / "target.vcf.gz"


class FileManager:
    """A client on the app, plus what tests look at behind it: the settings, storage root and session."""

    def __init__(self, client: httpx.AsyncClient, app: Any, tokens: TokenFactory, settings: Settings) -> None:
        self.client = client
        self.app = app
        self.tokens = tokens
        self.settings = settings

    def user(self, user_id: int = 1, *, roles: tuple[str, ...] = ("researcher",)) -> dict[str, str]:
        return self.tokens.headers(sub=str(user_id), username=f"user{user_id}", roles=roles)

    def admin(self) -> dict[str, str]:
        return self.tokens.headers(sub="99", username="admin", roles=("admin",))

    def service(self) -> dict[str, str]:
        return self.tokens.headers(
            sub="service:job_processor", username="job_processor", roles=(), audience="federated-imputation-internal"
        )

    @property
    def session(self) -> Any:
        return self.app.state.test_session

    def stored_files(self) -> list[Path]:
        """Every file under the storage root, finished or in progress."""
        return sorted(p for p in Path(self.settings.storage_dir).rglob("*") if p.is_file())

    async def upload(
        self,
        path_or_bytes: Path | bytes,
        *,
        headers: dict[str, str],
        filename: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> httpx.Response:
        if isinstance(path_or_bytes, Path):
            data, name = await anyio.Path(path_or_bytes).read_bytes(), filename or path_or_bytes.name
        else:
            data, name = path_or_bytes, filename or "upload.vcf"
        return await self.client.post(
            "/files/upload",
            files={"file": (name, data, "application/gzip")},
            data=fields or {},
            headers=headers,
        )


@pytest.fixture
def make_file_manager(
    databases: Any, tokens: TokenFactory, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[FileManager]]:
    """Start the app with settings overrides (`async with make_file_manager(max_upload_mb=1) as fm:`)."""

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[FileManager]:
        settings = Settings(storage_dir=tmp_path / "files", cleanup_interval_s=0, **overrides)
        app = build_app(settings)
        async with app_client(app, tokens=tokens) as client:
            yield FileManager(client, app, tokens, settings)

    return start


@pytest.fixture
async def fm(make_file_manager: Callable[..., Any]) -> AsyncIterator[FileManager]:
    """The file manager with default settings."""
    async with make_file_manager() as file_manager:
        yield file_manager
