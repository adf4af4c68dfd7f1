"""The file manager as a real process behind the real gateway: upload, ranged download, signed link, event."""

import hashlib
import json
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from tests.file_manager.conftest import HG38
from tests.harness import wait_until

pytestmark = pytest.mark.integration

PASSWORD = "a long passphrase for file tests"


def login(platform) -> dict[str, str]:
    api = f"{platform.url('gateway')}/api"
    username = f"fm-{uuid.uuid4().hex[:10]}"
    registered = httpx.post(
        f"{api}/auth/register/",
        json={"username": username, "email": f"{username}@example.org", "password": PASSWORD},
        timeout=15,
    )
    assert registered.status_code == 201, registered.text
    session = httpx.post(f"{api}/auth/login", json={"username": username, "password": PASSWORD}, timeout=15)
    assert session.status_code == 200, session.text
    return {"Authorization": f"Bearer {session.json()['access_token']}"}


def test_upload_download_and_signed_link_through_the_gateway(platform):
    api = f"{platform.url('gateway')}/api"
    user = login(platform)
    data = HG38.read_bytes()
    response = httpx.post(
        f"{api}/files/upload",
        files={"file": (HG38.name, data, "application/gzip")},
        headers=user,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert (stored["vcf"]["sample_count"], stored["vcf"]["build_hint"]) == (7, "hg38")

    ranged = httpx.get(f"{api}/files/{stored['id']}/download", headers={**user, "Range": "bytes=100-199"}, timeout=30)
    assert (ranged.status_code, ranged.content) == (206, data[100:200])
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(data)}"
    whole = httpx.get(f"{api}/files/{stored['id']}/download", headers=user, timeout=30)
    assert (whole.status_code, whole.headers["x-checksum-sha256"]) == (200, stored["sha256"])
    assert whole.content == data

    other = login(platform)
    assert httpx.get(f"{api}/files/{stored['id']}", headers=other, timeout=10).status_code == 404

    link = httpx.post(f"{api}/files/{stored['id']}/signed-url", headers=user, timeout=10).json()
    assert urlsplit(link["url"]).netloc == urlsplit(platform.url("file_manager")).netloc
    fetched = httpx.get(link["url"], timeout=30)
    assert (fetched.status_code, fetched.content) == (200, data)

    # The outbox relay in the file manager's lifespan publishes the upload's event on Redis Streams.
    events = redis.Redis.from_url(platform.redis.url, db=3, decode_responses=True)

    def published():
        entries = events.xrange("events:file.upload.completed")
        return [json.loads(fields["payload"]) for _, fields in entries if stored["id"] in fields["payload"]]

    (payload,) = wait_until(published, timeout_s=15)
    assert payload == {
        "file_id": stored["id"],
        "user_id": stored["owner_id"],
        "filename": HG38.name,
        "size_bytes": len(data),
        "sha256": stored["sha256"],
    }
