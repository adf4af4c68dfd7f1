"""Stand-ins for the job processor's peers inside unit tests: one httpx.MockTransport answering like the user
service, the registry and the file manager, from plain dicts a test can change."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from microservices.common.service_auth import ServiceTokenProvider
from microservices.job_processor.config import Settings
from microservices.job_processor.peers import Peers

USER_ID = 7
OTHER_USER_ID = 8


def file_id(name: str) -> str:
    """The file manager's id (a UUID) of the test file called `name`."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"file:{name}"))


def vcf_file(name: str, **overrides: Any) -> dict[str, Any]:
    """A file manager record of a valid hg19 chromosome-20 upload with 50 samples, stored as `name`.vcf.gz."""
    vcf = {
        "sample_count": 50,
        "chromosomes": ["20"],
        "chr_prefix": False,
        "phased": False,
        "build_hint": None,
        "warnings": [],
        **overrides.pop("vcf", {}),
    }
    return {
        "id": file_id(name),
        "filename": f"{name}.vcf.gz",
        "size_bytes": 4343,
        "sha256": "a" * 64,
        "md5": "b" * 32,
        "owner_id": USER_ID,
        "job_id": None,
        "vcf": vcf,
        **overrides,
    }


@dataclass
class PeerStub:
    services: dict[int, dict[str, Any]] = field(default_factory=dict)
    panels: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[int, dict[str, Any]] = field(default_factory=dict)
    user_credentials: dict[tuple[int, int], str] = field(default_factory=dict)
    service_credentials: dict[int, str] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    down: bool = False
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refuse_uploads: bool = False

    @classmethod
    def default(cls) -> PeerStub:
        stub = cls()
        stub.services[1] = {
            "id": 1,
            "name": "Michigan",
            "slug": "michigan",
            "api_type": "michigan",
            "base_url": "http://michigan.test",
            "is_active": True,
            "health_status": "healthy",
            "supported_builds": ["hg19", "hg38"],
            "max_upload_size_mb": 100,
            "min_samples": 20,
            "max_samples": 50000,
            "poll_interval_s": 10,
        }
        stub.services[2] = {
            "id": 2,
            "name": "eLwazi WES",
            "slug": "elwazi",
            "api_type": "ga4gh_wes",
            "base_url": "http://wes.test/ga4gh/wes/v1",
            "is_active": True,
            "health_status": "healthy",
            "supported_builds": ["hg19"],
            "max_upload_size_mb": 100,
            "min_samples": 1,
            "max_samples": None,
            "poll_interval_s": 5,
        }
        stub.panels = [
            {"id": 11, "service_id": 1, "panel_id": "apps@1000g-phase-3-v5", "name": "1000G Phase 3", "build": "hg19",
             "populations": ["eur", "afr", "mixed"], "is_active": True, "parameters": {}},
            {"id": 12, "service_id": 1, "panel_id": "apps@old", "name": "Old panel", "build": "hg19",
             "populations": [], "is_active": False, "parameters": {}},
            {"id": 21, "service_id": 2, "panel_id": "sim-1mb", "name": "Simulated 1 Mb", "build": "hg19",
             "populations": [], "is_active": True,
             "parameters": {"reference_vcf": "/data/ref.vcf.gz", "genetic_map": "/data/ref.map"}},
        ]  # fmt: skip
        stub.files[file_id("f1")] = vcf_file("f1")
        stub.permissions[USER_ID] = {
            "user_id": USER_ID,
            "roles": ["researcher"],
            "services": [{"service_id": 1, "monthly_quota": None, "via": "user"}, {"service_id": 2, "via": "group"}],
            "all_services": False,
        }
        stub.permissions[OTHER_USER_ID] = {"user_id": OTHER_USER_ID, "roles": [], "services": [], "all_services": False}
        return stub

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            return httpx.Response(503, json={"error": "service_unavailable", "detail": "down"})
        path = request.url.path
        if path == "/auth/token":
            return httpx.Response(200, json={"access_token": "service-token", "expires_in": 300})
        if path.startswith("/files") and request.headers.get("authorization", "").startswith("Bearer "):
            pass  # the file manager takes users' tokens too (uploads in the legacy form)
        elif request.headers.get("authorization") != "Bearer service-token":
            return httpx.Response(401, json={"error": "not_authenticated", "detail": "no token"})
        if m := re.fullmatch(r"/users/(\d+)/permissions", path):
            found = self.permissions.get(int(m[1]))
            return httpx.Response(200, json=found) if found else _not_found()
        if m := re.fullmatch(r"/internal/users/(\d+)/credentials/(\d+)", path):
            token = self.user_credentials.get((int(m[1]), int(m[2])))
            return httpx.Response(200, json={"token": token, "expires_at": None}) if token else _not_found()
        if m := re.fullmatch(r"/internal/services/(\d+)/credential", path):
            token = self.service_credentials.get(int(m[1]))
            return httpx.Response(200, json={"credential": token, "auth_mode": "token"}) if token else _not_found()
        if m := re.fullmatch(r"/services/(\d+)", path):
            service = self.services.get(int(m[1]))
            return httpx.Response(200, json=service) if service else _not_found()
        if path == "/reference-panels":
            service_id = int(request.url.params["service_id"])
            items = [p for p in self.panels if p["service_id"] == service_id]
            return httpx.Response(200, json={"items": items, "total": len(items), "page": 1, "page_size": 200})
        if path == "/files/upload" and request.method == "POST":
            body = await request.aread()
            if self.refuse_uploads:
                return httpx.Response(422, json={"error": "not_a_vcf", "detail": "Line 1: this is text, not a VCF."})
            name = f"up{len(self.uploads) + 1}"
            self.uploads.append((file_id(name), body))
            filename = re.search(rb'filename="([^"]+)"', body)
            self.files[file_id(name)] = vcf_file(name, filename=filename[1].decode() if filename else "x.vcf.gz")
            return httpx.Response(201, json=self.files[file_id(name)])
        if m := re.fullmatch(r"/files/([^/]+)", path):
            if request.method == "DELETE":
                self.deleted.append(m[1])
                self.files.pop(m[1], None)
                return httpx.Response(204)
            record = self.files.get(m[1])
            return httpx.Response(200, json=record) if record else _not_found()
        return _not_found()


def _not_found() -> httpx.Response:
    return httpx.Response(404, content=json.dumps({"error": "not_found", "detail": "Not Found"}))


def stub_peers(settings: Settings, stub: PeerStub) -> Peers:
    """Peers whose every call is answered by `stub`."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(stub.handler))
    tokens = ServiceTokenProvider(
        http=http, token_url=f"{settings.user_service_url}/auth/token", client_id="job_processor", client_secret="s"
    )
    return Peers(settings=settings, http=http, tokens=tokens)
