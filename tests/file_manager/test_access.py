"""Reading files: owner-only lists and metadata, streamed downloads with ranges and checksums, signed links."""

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from microservices.file_manager import service
from tests.file_manager.conftest import HG38, SMALL, TARGET, TINY


async def upload(fm, path, **kwargs) -> dict:
    response = await fm.upload(path, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


async def test_download_streams_the_exact_bytes_with_checksum_headers(fm):
    data = HG38.read_bytes()
    file_id = (await upload(fm, HG38, headers=fm.user(1)))["id"]
    response = await fm.client.get(f"/files/{file_id}/download", headers=fm.user(1))
    assert response.status_code == 200
    assert response.content == data
    sha256 = hashlib.sha256(data).hexdigest()
    assert response.headers["content-length"] == "62449"
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{sha256}"'
    assert response.headers["x-checksum-sha256"] == sha256
    assert response.headers["x-checksum-md5"] == hashlib.md5(data).hexdigest()
    assert response.headers["digest"] == "sha-256=" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"chr22.hg38.7samples.phased.vcf.gz\"; filename*=UTF-8''chr22.hg38.7samples.phased.vcf.gz"
    )


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=1000-", 1000, 30148),
        ("bytes=-500", 29648, 30148),
        ("bytes=30000-99999", 30000, 30148),
    ],
)
async def test_a_single_range_returns_exactly_those_bytes(fm, header, start, end):
    data = SMALL.read_bytes()
    file_id = (await upload(fm, SMALL, headers=fm.user(1)))["id"]
    response = await fm.client.get(f"/files/{file_id}/download", headers={**fm.user(1), "Range": header})
    assert response.status_code == 206
    assert response.content == data[start:end]
    assert response.headers["content-length"] == str(end - start)
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/30148"
    assert response.headers["x-checksum-sha256"] == hashlib.sha256(data).hexdigest()


async def test_ranges_that_cannot_be_served_partially(fm):
    data = TINY.read_bytes()
    file_id = (await upload(fm, TINY, headers=fm.user(1)))["id"]
    url = f"/files/{file_id}/download"
    response = await fm.client.get(url, headers={**fm.user(1), "Range": "bytes=5000-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */3499"
    # Several ranges, a stale If-Range and another unit get the whole file.
    for extra in ({"Range": "bytes=0-1,5-6"}, {"Range": "bytes=0-1", "If-Range": '"other"'}, {"Range": "lines=1-2"}):
        response = await fm.client.get(url, headers={**fm.user(1), **extra})
        assert (response.status_code, response.content) == (200, data)


async def test_another_user_sees_404_while_admin_and_service_can_read(fm):
    file_id = (await upload(fm, TINY, headers=fm.user(1)))["id"]
    for path in (f"/files/{file_id}", f"/files/{file_id}/download"):
        response = await fm.client.get(path, headers=fm.user(2))
        assert response.status_code == 404
        assert response.json() == {"error": "file_not_found", "detail": f"No file {file_id}."}
        assert (await fm.client.get(path, headers=fm.admin())).status_code == 200
        assert (await fm.client.get(path, headers=fm.service())).status_code == 200
    assert (await fm.client.delete(f"/files/{file_id}", headers=fm.user(2))).status_code == 404
    response = await fm.client.post(f"/files/{file_id}/signed-url", headers=fm.user(2))
    assert response.status_code == 404
    unknown = uuid.uuid4()
    assert (await fm.client.get(f"/files/{unknown}", headers=fm.admin())).status_code == 404
    assert (await fm.client.get(f"/files/{file_id}")).status_code == 401


async def test_lists_show_the_owners_files_with_filters_and_pagination(fm):
    mine = [
        (await upload(fm, TINY, headers=fm.user(1)))["id"],
        (await upload(fm, TARGET, headers=fm.user(1)))["id"],
    ]
    result = await upload(
        fm, SMALL, headers=fm.service(), fields={"owner_id": "1", "purpose": "result", "job_id": "job-7"}
    )
    input_of_job = await upload(fm, HG38, headers=fm.service(), fields={"owner_id": "1", "job_id": "job-7"})
    await upload(fm, TINY, headers=fm.service(), fields={"owner_id": "2", "job_id": "job-7"})

    response = await fm.client.get("/files", headers=fm.user(1), params={"page_size": 2})
    body = response.json()
    assert (body["total"], body["page"], body["page_size"], len(body["items"])) == (4, 1, 2, 2)
    page2 = (await fm.client.get("/files", headers=fm.user(1), params={"page_size": 2, "page": 2})).json()
    ids = {item["id"] for item in body["items"] + page2["items"]}
    assert ids == {*mine, result["id"], input_of_job["id"]}

    response = await fm.client.get("/files", headers=fm.user(1), params={"purpose": "result"})
    assert [item["id"] for item in response.json()["items"]] == [result["id"]]
    response = await fm.client.get("/jobs/job-7/files", headers=fm.user(1))
    assert {item["id"] for item in response.json()["items"]} == {result["id"], input_of_job["id"]}
    # The job processor sees every file of the job, whoever owns it.
    response = await fm.client.get("/jobs/job-7/files", headers=fm.service())
    assert response.json()["total"] == 3
    # A user's owner_id filter cannot widen the list beyond their own files.
    response = await fm.client.get("/files", headers=fm.user(2), params={"owner_id": 1})
    assert response.json()["total"] == 1
    response = await fm.client.get("/files", headers=fm.admin(), params={"owner_id": 2})
    assert response.json()["total"] == 1


async def test_delete_removes_record_and_bytes(fm):
    file_id = (await upload(fm, TINY, headers=fm.user(1)))["id"]
    assert len(fm.stored_files()) == 1
    response = await fm.client.delete(f"/files/{file_id}", headers=fm.user(1))
    assert response.status_code == 204
    assert fm.stored_files() == []
    assert (await fm.client.get(f"/files/{file_id}", headers=fm.user(1))).status_code == 404


async def test_a_delete_whose_commit_fails_keeps_the_bytes(fm, monkeypatch):
    file_id = (await upload(fm, TINY, headers=fm.user(1)))["id"]

    async def failing_commit() -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(fm.session, "commit", failing_commit)
    response = await fm.client.delete(f"/files/{file_id}", headers=fm.user(1))
    assert response.status_code == 500
    assert [p.read_bytes() for p in fm.stored_files()] == [TINY.read_bytes()]


async def test_signed_url_downloads_without_a_token_until_it_expires(fm):
    data = TINY.read_bytes()
    file_id = (await upload(fm, TINY, headers=fm.user(1)))["id"]
    before = datetime.now(UTC).replace(microsecond=0)
    response = await fm.client.post(f"/files/{file_id}/signed-url", headers=fm.user(1), json={"expires_in_s": 600})
    assert response.status_code == 200
    body = response.json()
    url = urlsplit(body["url"])
    assert f"{url.scheme}://{url.netloc}" == fm.settings.resolved_public_url == "http://127.0.0.1:8004"
    assert url.path == f"/files/{file_id}/download"
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(seconds=600) <= expires_at <= before + timedelta(seconds=602)

    response = await fm.client.get(f"{url.path}?{url.query}")
    assert (response.status_code, response.content) == (200, data)

    tampered_signature = url.query[:-1] + ("0" if url.query[-1] != "0" else "1")
    later_expiry = url.query.replace(f"expires={int(expires_at.timestamp())}", f"expires={2**40}")
    for query in (tampered_signature, later_expiry):
        response = await fm.client.get(f"{url.path}?{query}")
        assert response.status_code == 403
        assert response.json() == {
            "error": "invalid_signature",
            "detail": "The download link's signature is not valid.",
        }
    # A signature for one file opens no other.
    other = (await upload(fm, TARGET, headers=fm.user(1)))["id"]
    assert (await fm.client.get(f"/files/{other}/download?{url.query}")).status_code == 403


async def test_an_expired_signed_url_is_refused(fm):
    file_id = uuid.UUID((await upload(fm, TINY, headers=fm.user(1)))["id"])
    url, _ = service.signed_download_url(
        file_id=file_id, settings=fm.settings, ttl_s=60, now=datetime.now(UTC) - timedelta(minutes=2)
    )
    parts = urlsplit(url)
    response = await fm.client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 403
    assert response.json() == {"error": "link_expired", "detail": "The download link has expired; ask for a new one."}


async def test_a_service_may_sign_a_users_file_and_the_link_goes_to_the_public_url(make_file_manager):
    async with make_file_manager(public_url="https://files.example.org/") as fm:
        file_id = (await upload(fm, TINY, headers=fm.user(1)))["id"]
        response = await fm.client.post(f"/files/{file_id}/signed-url", headers=fm.service())
        assert response.status_code == 200
        assert response.json()["url"].startswith(f"https://files.example.org/files/{file_id}/download?expires=")


async def test_head_gives_the_download_headers_without_the_bytes(fm):
    data = SMALL.read_bytes()
    file_id = (await upload(fm, SMALL, headers=fm.user(1)))["id"]
    response = await fm.client.head(f"/files/{file_id}/download", headers=fm.user(1))
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-length"] == "30148"
    assert response.headers["x-checksum-sha256"] == hashlib.sha256(data).hexdigest()
    assert (await fm.client.head(f"/files/{file_id}/download", headers=fm.user(2))).status_code == 404
