"""The job API in process: creation with its checks, idempotency, listing, history, cancel, retry, passwords."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from microservices.job_processor.config import Settings
from microservices.job_processor.main import build_app
from microservices.job_processor.models import Job
from tests.harness import TokenFactory, app_client
from tests.job_processor.stubs import OTHER_USER_ID, USER_ID, PeerStub, file_id, stub_peers, vcf_file


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    stub: PeerStub
    enqueued: list[tuple[str, list[Any]]]
    tokens: TokenFactory

    def headers(self, user_id: int = USER_ID, **kwargs: Any) -> dict[str, str]:
        return self.tokens.headers(sub=str(user_id), **kwargs)

    async def create(
        self, user_id: int = USER_ID, headers: dict[str, str] | None = None, **fields: Any
    ) -> httpx.Response:
        body = {
            "name": "chr20 run",
            "service_id": 1,
            "reference_panel_id": 11,
            "input_file_ids": [file_id("f1")],
            **fields,
        }
        return await self.client.post("/jobs", json=body, headers={**self.headers(user_id), **(headers or {})})


@pytest.fixture
async def api(databases: Any, tokens: TokenFactory, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(var_dir=tmp_path)
    app = build_app(settings)
    stub = PeerStub.default()
    enqueued: list[tuple[str, list[Any]]] = []

    async def enqueue(task: str, args: list[Any]) -> None:
        enqueued.append((task, args))

    async with app_client(app, tokens=tokens) as client:
        app.state.peers = stub_peers(settings, stub)
        app.state.enqueue = enqueue
        yield Api(client=client, app=app, stub=stub, enqueued=enqueued, tokens=tokens)


async def test_create_job_queues_it_with_history_and_enqueues_submission(api: Api) -> None:
    response = await api.create(population="eur", r2_filter=0.3)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["user_id"] == USER_ID
    assert job["api_type"] == "michigan"
    assert job["service_name"] == "Michigan"
    assert job["input_file_ids"] == [file_id("f1")]
    assert job["has_result_password"] is True
    assert api.enqueued == [("jobs.submit", [job["id"]])]
    detail = (await api.client.get(f"/jobs/{job['id']}", headers=api.headers())).json()
    assert [(h["old_status"], h["new_status"]) for h in detail["status_history"]] == [
        (None, "pending"),
        ("pending", "queued"),
    ]
    updates = (await api.client.get(f"/jobs/{job['id']}/status-updates", headers=api.headers())).json()
    assert [u["new_status"] for u in updates] == ["pending", "queued"]


async def test_every_state_change_writes_an_outbox_event(api: Api) -> None:
    from microservices.common.events import outbox_table
    from microservices.job_processor.models import Base

    job = (await api.create()).json()
    outbox = outbox_table(Base.metadata)
    session = api.app.state.test_session
    rows = (await session.execute(select(outbox.c.topic, outbox.c.payload))).all()
    mine = [r.payload for r in rows if r.payload["job_id"] == job["id"]]
    assert [(p["old_status"], p["new_status"]) for p in mine] == [(None, "pending"), ("pending", "queued")]
    assert {r.topic for r in rows} == {"job.status.updated"}
    assert mine[1]["user_id"] == USER_ID
    assert mine[1]["job_name"] == "chr20 run"
    assert mine[1]["service_id"] == 1


async def test_scheduled_job_stays_pending_until_run_at(api: Api) -> None:
    response = await api.create(run_at="2099-01-01T00:00:00Z")
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert api.enqueued == []


async def test_idempotency_key_returns_the_first_job(api: Api) -> None:
    first = await api.create(headers={"Idempotency-Key": "abc-1"})
    again = await api.create(headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(api.enqueued) == 1
    listed = (await api.client.get("/jobs", headers=api.headers())).json()
    assert listed["total"] == 1


async def test_idempotency_key_with_a_different_body_is_a_conflict(api: Api) -> None:
    await api.create(headers={"Idempotency-Key": "abc-2"})
    response = await api.create(headers={"Idempotency-Key": "abc-2"}, name="another")
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_reused"


async def test_idempotency_keys_are_per_user(api: Api) -> None:
    api.stub.permissions[OTHER_USER_ID]["all_services"] = True
    api.stub.files[file_id("g1")] = vcf_file("g1", owner_id=OTHER_USER_ID)
    first = await api.create(headers={"Idempotency-Key": "same"})
    second = await api.create(
        user_id=OTHER_USER_ID, headers={"Idempotency-Key": "same"}, input_file_ids=[file_id("g1")]
    )
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("file_overrides", "fields", "code", "fragment"),
    [
        ({"vcf": {"chromosomes": ["20", "21"]}}, {}, "several_chromosomes", "contains chromosomes 20, 21"),
        ({"vcf": {"chr_prefix": True, "chromosomes": ["chr20"]}}, {}, "chr_prefix_hg19", "must not use the 'chr'"),
        ({}, {"build": "hg38"}, "chr_prefix_hg38", "must use the 'chr' prefix ('chr20')"),
        ({"vcf": {"sample_count": 7}}, {}, "too_few_samples", "has 7 samples; this service needs at least 20"),
        ({"size_bytes": 150_000_000}, {}, "file_too_large", "is 150.0 MB; this service accepts at most 100 MB"),
        ({}, {"phasing": False}, "unphased_without_phasing", "is unphased and phasing is switched off"),
        ({"vcf": {"build_hint": "hg38"}}, {}, "build_hint_mismatch", "looks like hg38"),
        ({"vcf": None}, {}, "not_a_vcf", "is not a VCF"),
    ],
)
async def test_preflight_refusals_name_the_file_and_the_fix(
    api: Api, file_overrides: dict[str, Any], fields: dict[str, Any], code: str, fragment: str
) -> None:
    record = vcf_file("f1")
    vcf_changes = file_overrides.pop("vcf", {})
    record["vcf"] = None if vcf_changes is None else {**record["vcf"], **vcf_changes}
    api.stub.files[file_id("f1")] = {**record, **file_overrides}
    response = await api.create(**fields)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "preflight_failed"
    assert [p["code"] for p in body["problems"]] == [code]
    assert body["problems"][0]["file"] == "f1.vcf.gz"
    assert "Input file 'f1.vcf.gz'" in body["detail"]
    assert fragment in body["detail"]
    jobs = (await api.client.get("/jobs", headers=api.headers())).json()
    assert jobs["total"] == 0  # nothing stored half-way
    assert api.enqueued == []


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"service_id": 99}, 403, "service_not_permitted"),
        ({"reference_panel_id": 21}, 422, "panel_not_in_service"),
        ({"reference_panel_id": 12}, 422, "panel_inactive"),
        ({"input_file_ids": [file_id("nope")]}, 422, "unknown_input_file"),
        ({"population": "sas"}, 422, "preflight_failed"),
        ({"build": "hg18"}, 422, "validation_error"),
        ({"input_file_ids": []}, 422, "validation_error"),
    ],
)
async def test_bad_requests_are_refused_with_a_clear_code(
    api: Api, fields: dict[str, Any], status: int, code: str
) -> None:
    response = await api.create(**fields)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


async def test_a_file_of_another_user_is_not_found(api: Api) -> None:
    api.stub.files[file_id("f1")]["owner_id"] = OTHER_USER_ID
    response = await api.create()
    assert response.status_code == 422
    assert response.json() == {
        "error": "unknown_input_file",
        "detail": f"Input file {file_id('f1')} is not among your uploads: upload it with POST /files/upload first.",
    }


async def test_inactive_service_and_unknown_service(api: Api) -> None:
    api.stub.permissions[USER_ID]["all_services"] = True
    api.stub.services[1]["is_active"] = False
    assert (await api.create()).json()["error"] == "service_inactive"
    assert (await api.create(service_id=5)).json()["error"] == "unknown_service"


async def test_monthly_quota(api: Api) -> None:
    api.stub.permissions[USER_ID]["services"][0]["monthly_quota"] = 1
    assert (await api.create()).status_code == 201
    response = await api.create()
    assert response.status_code == 403
    assert response.json()["error"] == "quota_exceeded"


async def test_jobs_that_never_reached_the_remote_server_do_not_use_the_quota(api: Api) -> None:
    from microservices.job_processor.models import Job

    api.stub.permissions[USER_ID]["services"][0]["monthly_quota"] = 2
    session = api.app.state.test_session
    ids = [(await api.create()).json()["id"] for _ in range(2)]
    assert (await api.create()).json()["error"] == "quota_exceeded"
    # Refused by the remote server at submission, and cancelled while still queued: neither counts any more.
    await session.execute(update(Job).where(Job.id == ids[0]).values(status="failed"))
    await session.execute(update(Job).where(Job.id == ids[1]).values(status="cancelled"))
    third = await api.create()
    assert third.status_code == 201
    fourth = await api.create()
    assert fourth.status_code == 201
    assert (await api.create()).json()["error"] == "quota_exceeded"
    # A job the remote server had counts, however it ended.
    await session.execute(update(Job).where(Job.id == third.json()["id"]).values(status="failed", remote_job_id="j-1"))
    assert (await api.create()).json()["error"] == "quota_exceeded"


async def test_wes_job_needs_one_file_and_a_configured_panel(api: Api) -> None:
    api.stub.files[file_id("f2")] = vcf_file("f2")
    response = await api.create(service_id=2, reference_panel_id=21, input_file_ids=[file_id("f1"), file_id("f2")])
    assert response.status_code == 422
    assert [p["code"] for p in response.json()["problems"]] == ["one_file_per_job"]
    ok = await api.create(service_id=2, reference_panel_id=21)
    assert ok.status_code == 201
    assert ok.json()["has_result_password"] is False


async def test_peer_outage_is_503_and_stores_nothing(api: Api) -> None:
    api.stub.down = True
    response = await api.create()
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"
    api.stub.down = False
    assert (await api.client.get("/jobs", headers=api.headers())).json()["total"] == 0


async def test_jobs_are_private_and_admins_see_all(api: Api) -> None:
    job = (await api.create()).json()
    other = await api.client.get(f"/jobs/{job['id']}", headers=api.headers(OTHER_USER_ID))
    assert other.status_code == 404
    assert (await api.client.get("/jobs", headers=api.headers(OTHER_USER_ID))).json()["total"] == 0
    admin = api.headers(1, roles=["admin"])
    assert (await api.client.get(f"/jobs/{job['id']}", headers=admin)).status_code == 200
    assert (await api.client.get("/jobs", headers=admin)).json()["total"] == 1
    assert (await api.client.get("/jobs")).status_code == 401


async def test_list_filters_and_pagination(api: Api) -> None:
    for index in range(3):
        await api.create(name=f"cohort {index}")
    await api.create(name="other study", run_at="2099-01-01T00:00:00Z")
    h = api.headers()
    page = (await api.client.get("/jobs", params={"page": 1, "page_size": 2}, headers=h)).json()
    assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (4, 1, 2, 2)
    assert page["items"][0]["name"] == "other study"  # newest first
    queued = (await api.client.get("/jobs", params={"status": "queued"}, headers=h)).json()
    assert queued["total"] == 3
    both = (await api.client.get("/jobs?status=queued&status=pending", headers=h)).json()
    assert both["total"] == 4
    searched = (await api.client.get("/jobs", params={"search": "cohort 1"}, headers=h)).json()
    assert [j["name"] for j in searched["items"]] == ["cohort 1"]
    assert (await api.client.get("/jobs", params={"service_id": 2}, headers=h)).json()["total"] == 0
    assert (await api.client.get("/jobs", params={"created_after": "2099-01-01"}, headers=h)).json()["total"] == 0
    bad = await api.client.get("/jobs", params={"status": "sleeping"}, headers=h)
    assert bad.status_code == 400


async def test_list_sorted_by_each_field_with_id_breaking_ties(api: Api) -> None:
    ids = {}
    for name, fields in (("b cohort", {}), ("a cohort", {}), ("c study", {"run_at": "2099-01-01T00:00:00Z"})):
        ids[name] = (await api.create(name=name, **fields)).json()["id"]
    assert (await api.client.post(f"/jobs/{ids['b cohort']}/cancel", headers=api.headers())).status_code == 200

    async def names(sort: str | None, **params: Any) -> list[str]:
        query = {**params, **({"sort": sort} if sort else {})}
        response = await api.client.get("/jobs", params=query, headers=api.headers())
        assert response.status_code == 200, response.text
        return [j["name"] for j in response.json()["items"]]

    assert await names(None) == ["c study", "a cohort", "b cohort"]  # newest first
    assert await names("-created_at") == ["c study", "a cohort", "b cohort"]
    assert await names("created_at") == ["b cohort", "a cohort", "c study"]
    assert await names("name") == ["a cohort", "b cohort", "c study"]
    assert await names("-name") == ["c study", "b cohort", "a cohort"]
    assert await names("status") == ["b cohort", "c study", "a cohort"]  # cancelled, pending, queued
    assert await names("-status") == ["a cohort", "c study", "b cohort"]
    assert await names("-updated_at") == ["b cohort", "c study", "a cohort"]
    assert await names("updated_at") == ["a cohort", "c study", "b cohort"]


async def test_list_sort_ties_are_broken_by_id_so_pages_never_overlap(api: Api) -> None:
    ids = sorted([(await api.create(name="same")).json()["id"] for _ in range(3)])
    pages = []
    for page in (1, 2, 3):
        response = await api.client.get(
            "/jobs", params={"sort": "name", "page": page, "page_size": 1}, headers=api.headers()
        )
        pages += [j["id"] for j in response.json()["items"]]
    assert pages == ids


@pytest.mark.parametrize("sort", ["owner", "--name", "name-", "", "Name"])
async def test_list_refuses_an_unknown_sort_field(api: Api, sort: str) -> None:
    response = await api.client.get("/jobs", params={"sort": sort}, headers=api.headers())
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad_request",
        "detail": f"Cannot sort jobs by {sort!r}; sort by one of created_at, -created_at, updated_at, -updated_at, "
        "name, -name, status, -status.",
    }


async def test_cancel_queued_job_then_retry(api: Api) -> None:
    job = (await api.create()).json()
    cancelled = await api.client.post(f"/jobs/{job['id']}/cancel", headers=api.headers())
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["status_message"] == "Cancelled by the user."
    again = await api.client.post(f"/jobs/{job['id']}/cancel", headers=api.headers())
    assert again.status_code == 409
    assert again.json()["error"] == "invalid_transition"
    retry = await api.client.post(f"/jobs/{job['id']}/retry", headers=api.headers())
    assert retry.status_code == 201
    assert retry.json()["retry_of_id"] == job["id"]
    assert retry.json()["status"] == "queued"
    assert api.enqueued[-1] == ("jobs.submit", [retry.json()["id"]])
    # a running job is cancelled remotely too
    session = api.app.state.test_session
    running = await session.get(Job, __import__("uuid").UUID(retry.json()["id"]))
    running.status = "running"
    await session.flush()
    await api.client.post(f"/jobs/{running.id}/cancel", json={"reason": "wrong panel"}, headers=api.headers())
    assert api.enqueued[-1] == ("jobs.cancel_remote", [str(running.id)])


async def test_other_users_cannot_cancel(api: Api) -> None:
    job = (await api.create()).json()
    response = await api.client.post(f"/jobs/{job['id']}/cancel", headers=api.headers(OTHER_USER_ID))
    assert response.status_code == 404


async def test_retry_of_a_live_job_is_a_conflict(api: Api) -> None:
    job = (await api.create()).json()
    response = await api.client.post(f"/jobs/{job['id']}/retry", headers=api.headers())
    assert response.status_code == 409
    assert response.json()["error"] == "not_retryable"


async def test_result_password_is_for_the_owner_only(api: Api) -> None:
    job = (await api.create()).json()
    mine = await api.client.get(f"/jobs/{job['id']}/result-password", headers=api.headers())
    assert mine.status_code == 200
    assert len(mine.json()["password"]) == 24
    admin = await api.client.get(f"/jobs/{job['id']}/result-password", headers=api.headers(1, roles=["admin"]))
    assert admin.status_code == 404
    detail = (await api.client.get(f"/jobs/{job['id']}", headers=api.headers())).json()
    assert mine.json()["password"] not in str(detail)
    stored = await api.app.state.test_session.get(Job, __import__("uuid").UUID(job["id"]))
    assert mine.json()["password"] not in stored.result_password_encrypted


async def test_service_accounts_cannot_own_jobs(api: Api) -> None:
    headers = api.tokens.headers(sub="service:gateway", audience="federated-imputation-internal", roles=[])
    response = await api.client.post(
        "/jobs",
        json={"name": "x", "service_id": 1, "reference_panel_id": 11, "input_file_ids": [file_id("f1")]},
        headers=headers,
    )
    assert response.status_code == 403


async def test_legacy_multipart_form_uploads_then_creates(api: Api) -> None:
    response = await api.client.post(
        "/jobs",
        data={"name": "legacy", "service_id": "1", "reference_panel_id": "11", "build": "hg19", "phasing": "true",
              "population": "eur"},
        files={"input_file": ("chr20.vcf.gz", b"\x1f\x8b fake bgzip bytes", "application/gzip")},
        headers=api.headers(),
    )  # fmt: skip
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["input_file_ids"] == [file_id("up1")]
    assert (job["name"], job["phasing"], job["population"]) == ("legacy", True, "eur")
    _, body = api.stub.uploads[0]
    assert b"\x1f\x8b fake bgzip bytes" in body
    assert b'filename="chr20.vcf.gz"' in body
    upload_request = next(r for r in api.stub.requests if r.url.path == "/files/upload")
    token = upload_request.headers["authorization"].removeprefix("Bearer ")
    assert __import__("jose").jwt.get_unverified_claims(token)["sub"] == str(USER_ID)  # stored as the user's file


async def test_legacy_form_refused_job_removes_its_upload(api: Api) -> None:
    api.stub.files[file_id("later")] = vcf_file("later")
    response = await api.client.post(
        "/jobs",
        data={"name": "legacy", "service_id": "1", "reference_panel_id": "11", "phasing": "no"},
        files={"input_file": ("chr20.vcf.gz", b"data", "application/gzip")},
        headers=api.headers(),
    )
    assert response.status_code == 422
    assert response.json()["problems"][0]["code"] == "unphased_without_phasing"
    assert api.stub.deleted == [file_id("up1")]


async def test_legacy_form_with_bad_fields_stores_nothing(api: Api) -> None:
    response = await api.client.post(
        "/jobs",
        data={"name": "legacy", "service_id": "one", "reference_panel_id": "11"},
        files={"input_file": ("chr20.vcf.gz", b"data", "application/gzip")},
        headers=api.headers(),
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert api.stub.uploads == []


async def test_legacy_form_passes_on_the_file_managers_refusal(api: Api) -> None:
    api.stub.refuse_uploads = True
    response = await api.client.post(
        "/jobs",
        data={"name": "legacy", "service_id": "1", "reference_panel_id": "11"},
        files={"input_file": ("notes.txt", b"hello", "text/plain")},
        headers=api.headers(),
    )
    assert response.status_code == 422
    assert response.json() == {"error": "not_a_vcf", "detail": "Line 1: this is text, not a VCF."}


async def test_multi_service_reports_each_target(api: Api) -> None:
    body = {
        "name": "one input, two services",
        "input_file_ids": [file_id("f1")],
        "targets": [{"service_id": 1, "reference_panel_id": 11}, {"service_id": 2, "reference_panel_id": 11}],
    }
    response = await api.client.post("/jobs/multi-service", json=body, headers=api.headers())
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["created"], result["failed"]) == (1, 1)
    assert result["results"][0]["job"]["service_id"] == 1
    assert result["results"][0]["job"]["batch_id"] == result["batch_id"]
    assert result["results"][1]["status_code"] == 422
    assert result["results"][1]["error"] == "panel_not_in_service"
    assert api.enqueued == [("jobs.submit", [result["results"][0]["job"]["id"]])]


async def test_multi_service_legacy_form(api: Api) -> None:
    response = await api.client.post(
        "/jobs/multi-service",
        data={"name": "two", "service_ids": "1,2", "reference_panel_ids": "11,21", "build": "hg19"},
        files={"input_file": ("chr20.vcf.gz", b"data", "application/gzip")},
        headers=api.headers(),
    )
    assert response.status_code == 201, response.text
    jobs = [r["job"] for r in response.json()["results"]]
    assert [(j["service_id"], j["input_file_ids"]) for j in jobs] == [(1, [file_id("up1")]), (2, [file_id("up1")])]


async def test_batch_where_every_item_fails_is_422_with_each_reason(api: Api) -> None:
    items = [
        {"name": "a", "service_id": 1, "reference_panel_id": 12, "input_file_ids": [file_id("f1")]},
        {"name": "b", "service_id": 1, "reference_panel_id": 11, "input_file_ids": [file_id("nope")]},
    ]
    response = await api.client.post("/jobs/batch", json={"items": items}, headers=api.headers())
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "batch_refused"
    assert [r["error"] for r in body["results"]] == ["panel_inactive", "unknown_input_file"]
    assert (await api.client.get("/jobs", headers=api.headers())).json()["total"] == 0


async def test_templates_save_parameters_and_start_jobs(api: Api) -> None:
    h = api.headers()
    body = {"name": "chr20 EUR", "service_id": 1, "reference_panel_id": 11, "population": "eur", "r2_filter": 0.3}
    created = await api.client.post("/templates", json=body, headers=h)
    assert created.status_code == 201, created.text
    template = created.json()
    assert (template["user_id"], template["build"], template["phasing"]) == (USER_ID, "hg19", True)
    duplicate = await api.client.post("/templates", json=body, headers=h)
    assert (duplicate.status_code, duplicate.json()["error"]) == (409, "template_exists")
    patched = await api.client.patch(f"/templates/{template['id']}", json={"population": "afr"}, headers=h)
    assert patched.json()["population"] == "afr"
    listed = (await api.client.get("/templates", headers=h)).json()
    assert [t["name"] for t in listed["items"]] == ["chr20 EUR"]
    assert (await api.client.get(f"/templates/{template['id']}", headers=api.headers(OTHER_USER_ID))).status_code == 404
    job = await api.client.post(
        f"/templates/{template['id']}/jobs", json={"input_file_ids": [file_id("f1")]}, headers=h
    )
    assert job.status_code == 201, job.text
    assert (job.json()["name"], job.json()["population"], job.json()["r2_filter"]) == ("chr20 EUR", "afr", 0.3)
    assert job.json()["template_id"] == template["id"]
    assert api.enqueued == [("jobs.submit", [job.json()["id"]])]
    assert (await api.client.delete(f"/templates/{template['id']}", headers=h)).status_code == 204
    assert (await api.client.get(f"/templates/{template['id']}", headers=h)).status_code == 404


@pytest.mark.parametrize("bad_id", ["../../admin/users", f"{file_id('f1')}?owner=me", "f1"])
async def test_input_file_ids_must_be_uuids_everywhere(api: Api, bad_id: str) -> None:
    h = api.headers()
    template = await api.client.post(
        "/templates", json={"name": "t", "service_id": 1, "reference_panel_id": 11}, headers=h
    )
    multi = {"name": "m", "input_file_ids": [bad_id], "targets": [{"service_id": 1, "reference_panel_id": 11}]}
    responses = [
        await api.create(input_file_ids=[bad_id]),
        await api.client.post("/jobs/multi-service", json=multi, headers=h),
        await api.client.post(f"/templates/{template.json()['id']}/jobs", json={"input_file_ids": [bad_id]}, headers=h),
    ]
    assert [(r.status_code, r.json()["error"]) for r in responses] == [(422, "validation_error")] * 3
    assert [str(r.url) for r in api.stub.requests if r.url.path.startswith("/files")] == []


async def test_a_file_without_an_owner_is_not_found(api: Api) -> None:
    del api.stub.files[file_id("f1")]["owner_id"]
    response = await api.create()
    assert response.status_code == 422
    assert response.json() == {
        "error": "unknown_input_file",
        "detail": f"Input file {file_id('f1')} is not among your uploads: upload it with POST /files/upload first.",
    }


async def test_a_file_record_without_its_id_is_stored_under_the_requested_id(api: Api) -> None:
    del api.stub.files[file_id("f1")]["id"]
    response = await api.create()
    assert response.status_code == 201, response.text
    stored = await api.app.state.test_session.get(Job, uuid.UUID(response.json()["id"]))
    assert [f["id"] for f in stored.input_files] == [file_id("f1")]


async def test_an_idempotency_race_leaves_nothing_of_the_losing_job(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from microservices.common.events import outbox_table
    from microservices.job_processor import service
    from microservices.job_processor.models import Base, JobStatusHistory

    winner = await api.create(headers={"Idempotency-Key": "race"})
    looked_up = service._job_for_key
    calls: list[str] = []

    async def not_yet_committed(session: Any, **kwargs: Any) -> Job | None:
        # The first look finds nothing, as when the winner has not committed yet; the one after the conflict does.
        calls.append(kwargs["key"])
        return None if len(calls) == 1 else await looked_up(session, **kwargs)

    monkeypatch.setattr(service, "_job_for_key", not_yet_committed)
    loser = await api.create(headers={"Idempotency-Key": "race"})
    assert (loser.status_code, loser.headers.get("idempotent-replayed")) == (200, "true")
    assert loser.json()["id"] == winner.json()["id"]
    session = api.app.state.test_session
    outbox = outbox_table(Base.metadata)
    events = (await session.execute(select(outbox.c.payload))).scalars().all()
    assert [e["job_id"] for e in events] == [winner.json()["id"]] * 2
    assert (await session.execute(select(JobStatusHistory.job_id))).scalars().all() == [
        uuid.UUID(winner.json()["id"])
    ] * 2
    assert (await session.execute(select(Job.id))).scalars().all() == [uuid.UUID(winner.json()["id"])]


async def test_concurrent_requests_count_the_monthly_quota_one_at_a_time(api: Api) -> None:
    import asyncio

    from sqlalchemy import text

    from microservices.job_processor.service import quota_lock_key

    api.stub.permissions[USER_ID]["services"][0]["monthly_quota"] = 1
    engine = api.app.state.test_session.bind.engine
    async with engine.connect() as other:
        # Another request counting right now, for this user and service.
        await other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": quota_lock_key(USER_ID, 1)})
        creating = asyncio.ensure_future(api.create())
        done, _ = await asyncio.wait([creating], timeout=1.0)
        assert done == set()  # waits for the other count to finish instead of counting alongside it
        await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": quota_lock_key(USER_ID, 1)})
        await other.commit()
    assert (await creating).status_code == 201


async def test_legacy_upload_is_streamed_with_awaited_reads(api: Api) -> None:
    class AsyncOnlyUpload:
        """An upload that can only be read with awaits, as Starlette's UploadFile is meant to be."""

        def __init__(self, data: bytes) -> None:
            self.data, self.position, self.size, self.reads = data, 0, len(data), list[int]()

        async def read(self, size: int = -1) -> bytes:
            self.reads.append(size)
            chunk = self.data[self.position : self.position + size]
            self.position += len(chunk)
            return chunk

        async def seek(self, offset: int) -> None:
            self.position = offset

    data = bytes(range(256)) * 6144  # 1.5 MiB
    upload = AsyncOnlyUpload(data)
    peers = stub_peers(Settings(), api.stub)
    stored = await peers.upload_input(upload, filename='chr20 "x".vcf.gz', authorization="Bearer user-token")
    assert stored["id"] == file_id("up1")
    assert upload.reads == [1 << 20, 1 << 20, 1 << 20]
    request = next(r for r in api.stub.requests if r.url.path == "/files/upload")
    marker = request.headers["content-type"].removeprefix("multipart/form-data; boundary=")
    expected = (
        (
            f'--{marker}\r\nContent-Disposition: form-data; name="file"; filename="chr20 %22x%22.vcf.gz"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{marker}--\r\n".encode()
    )
    assert api.stub.uploads == [(file_id("up1"), expected)]
    assert request.headers["content-length"] == str(len(expected))
    assert request.headers["authorization"] == "Bearer user-token"
