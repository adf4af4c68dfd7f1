"""Dependencies of the file manager's endpoints: settings, storage, and the file-access checks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request

from microservices.common.auth import CurrentPrincipal, get_principal
from microservices.common.db import SessionDep
from microservices.common.errors import NotFound
from microservices.file_manager import service
from microservices.file_manager.config import Settings
from microservices.file_manager.models import StoredFile
from microservices.file_manager.storage import Storage


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_storage(request: Request) -> Storage:
    """The storage backend made in the lifespan."""
    storage: Storage = request.app.state.storage
    return storage


SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def _not_found(file_id: uuid.UUID) -> NotFound:
    # The same answer for "missing" and "not yours", so that ids of other users' files reveal nothing.
    return NotFound(f"No file {file_id}.", code="file_not_found")


async def valid_file_id(file_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> StoredFile:
    """The file in the path, when the caller is its owner, an admin or a service account; else 404."""
    stored_file = await service.get_file(session=session, file_id=file_id)
    if stored_file is None or not service.may_access(principal, stored_file):
        raise _not_found(file_id)
    return stored_file


async def downloadable_file(
    request: Request,
    file_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    expires: Annotated[int | None, Query(description="Expiry of a signed link (Unix time)")] = None,
    signature: Annotated[str | None, Query(description="Signature of a signed link")] = None,
) -> StoredFile:
    """The file to download: by a valid signed link without a token, else as `valid_file_id`."""
    if signature is None and expires is None:
        return await valid_file_id(file_id, await get_principal(request), session)
    service.check_signature(file_id=file_id, expires=expires or 0, signature=signature or "", settings=settings)
    stored_file = await service.get_file(session=session, file_id=file_id)
    if stored_file is None:
        raise _not_found(file_id)
    return stored_file


ValidFile = Annotated[StoredFile, Depends(valid_file_id)]
DownloadableFile = Annotated[StoredFile, Depends(downloadable_file)]
