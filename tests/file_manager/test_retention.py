"""Retention: result files past their time lose their bytes and are marked expired; their metadata stays."""

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from microservices.file_manager import service
from microservices.file_manager.models import StoredFile
from tests.file_manager.conftest import SMALL, TINY


async def test_cleanup_expires_due_result_files_and_keeps_their_metadata(fm):
    fields = {"owner_id": "1", "purpose": "result", "job_id": "job-1"}
    due = (await fm.upload(SMALL, headers=fm.service(), fields=fields)).json()
    kept = (await fm.upload(TINY, headers=fm.service(), fields=fields)).json()
    user_input = (await fm.upload(TINY, headers=fm.user(1))).json()
    row = await fm.session.get(StoredFile, uuid.UUID(due["id"]))
    row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    await fm.session.flush()
    assert len(fm.stored_files()) == 3

    assert (await fm.client.post("/files/cleanup", headers=fm.user(1))).status_code == 403
    response = await fm.client.post("/files/cleanup", headers=fm.service())
    assert response.status_code == 200
    assert response.json() == {"expired": 1, "file_ids": [due["id"]], "leftovers_removed": 0}

    assert len(fm.stored_files()) == 2
    body = (await fm.client.get(f"/files/{due['id']}", headers=fm.user(1))).json()
    assert (body["status"], body["sha256"], body["size_bytes"]) == ("expired", due["sha256"], 30148)
    assert body["expired_at"] is not None
    response = await fm.client.get(f"/files/{due['id']}/download", headers=fm.user(1))
    assert response.status_code == 410
    assert response.json() == {
        "error": "file_expired",
        "detail": "The bytes of chr20.small.1000snps.vcf.gz were removed when it expired.",
    }
    # Expired files no longer count against the quota; the others are untouched.
    assert await service.storage_used(session=fm.session, owner_id=1) == 3499 * 2
    statuses = dict((await fm.session.execute(select(StoredFile.id, StoredFile.status))).all())
    assert {str(k): v for k, v in statuses.items()} == {
        due["id"]: "expired",
        kept["id"]: "available",
        user_input["id"]: "available",
    }
    # A second run finds nothing more to do.
    assert (await fm.client.post("/files/cleanup", headers=fm.admin())).json()["expired"] == 0


async def test_retention_removes_abandoned_uploads_and_orphan_bytes_but_nothing_recent_or_recorded(fm):
    recorded = (await fm.upload(TINY, headers=fm.user(1))).json()
    root = fm.settings.storage_dir
    incoming = root / ".incoming"
    stale, fresh = incoming / "stale.part", incoming / "fresh.part"
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload in progress")
    orphan = root / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir()
    orphan.write_bytes(b"bytes whose record was never committed")
    old = time.time() - fm.settings.stale_upload_after_s - 60
    recorded_path = root / recorded["id"].replace("-", "")[:2] / recorded["id"].replace("-", "")
    for path in (stale, orphan, recorded_path):
        os.utime(path, (old, old))
    expired, removed = await service.run_retention(
        session=fm.session, storage=fm.app.state.storage, settings=fm.settings
    )
    assert (expired, removed) == ([], 2)
    assert sorted(p.name for p in incoming.iterdir()) == ["fresh.part"]
    assert not orphan.exists()
    assert recorded_path.read_bytes() == TINY.read_bytes()


async def test_expired_bytes_go_only_after_the_commit_and_a_crash_in_between_leaves_them_to_the_orphan_sweep(
    fm, monkeypatch
):
    fields = {"owner_id": "1", "purpose": "result", "job_id": "job-1"}
    due = (await fm.upload(TINY, headers=fm.service(), fields=fields)).json()
    row = await fm.session.get(StoredFile, uuid.UUID(due["id"]))
    row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    await fm.session.flush()
    path = fm.stored_files()[0]

    async def failing_commit() -> None:
        raise ConnectionError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(fm.session, "commit", failing_commit)
        with pytest.raises(ConnectionError):
            await service.run_retention(session=fm.session, storage=fm.app.state.storage, settings=fm.settings)
    assert path.read_bytes() == TINY.read_bytes()

    # The commit succeeded but the process died before deleting: a later run removes the bytes of the expired file.
    old = time.time() - fm.settings.stale_upload_after_s - 60
    os.utime(path, (old, old))
    removed = await service.remove_orphans(
        session=fm.session, storage=fm.app.state.storage, older_than_s=fm.settings.stale_upload_after_s
    )
    assert removed == 1
    assert fm.stored_files() == []
