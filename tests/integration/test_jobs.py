"""Jobs end to end through the gateway, on the real platform: upload → submit → running → completed → results
fetched and checksummed, against the Michigan fake (a process) and a real WES server (sapporo running the shipped
Beagle workflow, whose imputed VCF is checked against the truth); cancel mid-run on each; a worker SIGKILLed right
after a submission; a remote server down for a while; bad inputs refused."""

from __future__ import annotations

import hashlib
import html
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from microservices.common.localinfra import free_port
from tests.harness import ROOT, Platform, wait_until
from tests.job_processor.accuracy import evaluate
from tests.job_processor.sapporo_server import SapporoServer, start_sapporo

pytestmark = pytest.mark.integration

DATA = ROOT / "tests" / "data"
SIM = DATA / "sim-1mb"
MICHIGAN_TOKEN = f"mis-{uuid.uuid4().hex}"
FAST_JOBS = {
    # Poll every second (the registry's polite minimum is 10 s) and take up a dead worker's submission after 5 s.
    "JOB_PROCESSOR_POLL_INTERVAL_OVERRIDE_S": "1",
    "JOB_PROCESSOR_POLL_TICK_S": "1",
    "JOB_PROCESSOR_STALE_SUBMISSION_S": "5",
}


@dataclass
class World:
    platform: Platform
    http: httpx.Client
    admin: dict[str, str]
    user: dict[str, str]
    user_id: int
    michigan_url: str
    sapporo: SapporoServer
    michigan_service: int
    michigan_panel: int
    wes_service: int
    wes_panel: int
    target_file: str

    @property
    def api(self) -> str:
        return f"{self.platform.url('gateway')}/api"

    def submit(self, *, wes: bool = False, headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
        body = {
            "name": f"chr20 {'wes' if wes else 'michigan'} {uuid.uuid4().hex[:6]}",
            "service_id": self.wes_service if wes else self.michigan_service,
            "reference_panel_id": self.wes_panel if wes else self.michigan_panel,
            "build": "hg19",
            "population": None if wes else "eur",
            "input_file_ids": [self.target_file],
            **fields,
        }
        return self.http.post(f"{self.api}/jobs", json=body, headers={**self.user, **(headers or {})})

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.api}/jobs/{job_id}", headers=self.user)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_status(self, job_id: str, wanted: str, *, timeout_s: float) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            if job["status"] in ("failed", "cancelled", "completed") and job["status"] != wanted:
                raise AssertionError(f"job ended {job['status']}: {job['status_message']}")
            return job if job["status"] == wanted else None

        return dict(wait_until(reached, timeout_s=timeout_s, interval_s=1.0))

    def fake(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.michigan_url}/_fake{path}", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def submissions_of(self, job_id: str) -> int:
        """Remote jobs on the fake carrying our job's tag: other tests' jobs cannot blur this count."""
        response = self.http.get(f"{self.michigan_url}/api/v2/jobs", headers={"X-Auth-Token": MICHIGAN_TOKEN})
        assert response.status_code == 200, response.text
        return sum(1 for job in response.json()["data"] if f"fi:{job_id}" in html.unescape(str(job.get("name"))))


def _login(http: httpx.Client, api: str, username: str, password: str) -> tuple[dict[str, str], int]:
    response = http.post(f"{api}/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return {"Authorization": f"Bearer {body['access_token']}"}, int(body["user"]["id"])


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def world(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    platform.supervisor.env.update(FAST_JOBS)
    for name in ("job_processor", "job-worker"):
        platform.stop_component(name)
        platform.restart_component(name)
    port = free_port()
    fake_log = (tmp_path_factory.mktemp("michigan") / "fake.log").open("ab")
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.michigan", "--port", str(port), "--token", MICHIGAN_TOKEN,
         "--job-run-time", "3", "--max-concurrent-jobs", "10"],
        cwd=ROOT, stdout=fake_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    michigan_url = f"http://127.0.0.1:{port}"
    try:
        with start_sapporo(tmp_path_factory.mktemp("sapporo")) as sapporo, httpx.Client(timeout=30) as http:
            wait_until(lambda: _answers(http, f"{michigan_url}/api/v2/server"), timeout_s=30)
            api = f"{platform.url('gateway')}/api"
            admin, _ = _login(http, api, "admin", platform.env["BOOTSTRAP_ADMIN_PASSWORD"])
            username = f"researcher-{uuid.uuid4().hex[:8]}"
            _created(
                http.post(
                    f"{api}/users",
                    json={"username": username, "email": f"{username}@example.org", "password": "a long passphrase"},
                    headers=admin,
                )
            )
            user, user_id = _login(http, api, username, "a long passphrase")
            michigan = _created(
                http.post(
                    f"{api}/services",
                    json={
                        "name": "Michigan fake",
                        "api_type": "michigan",
                        "base_url": michigan_url,
                        "auth_mode": "api_token",
                        "min_samples": 20,
                        "max_samples": 50000,
                        "max_upload_size_mb": 100,
                        "poll_interval_s": 10,
                    },
                    headers=admin,
                )
            )
            michigan_panel = _created(
                http.post(
                    f"{api}/services/{michigan['id']}/panels",
                    json={"panel_id": "apps@1000g-phase-3-v5@2.0.0", "name": "1000G Phase 3", "build": "hg19",
                          "populations": ["afr", "amr", "eas", "eur", "sas", "all"]},
                    headers=admin,
                )
            )  # fmt: skip
            wes = _created(
                http.post(
                    f"{api}/services",
                    json={"name": "WES node", "api_type": "ga4gh_wes", "base_url": sapporo.base_url,
                          "supported_builds": ["hg19"], "poll_interval_s": 10},
                    headers=admin,
                )
            )  # fmt: skip
            wes_panel = _created(
                http.post(
                    f"{api}/services/{wes['id']}/panels",
                    json={"panel_id": "sim-1mb", "name": "Simulated 1 Mb", "build": "hg19",
                          "parameters": {"reference_vcf": str(SIM / "ref.vcf.gz"),
                                         "genetic_map": str(SIM / "ref.map")}},
                    headers=admin,
                )
            )  # fmt: skip
            for service_id in (michigan["id"], wes["id"]):
                _created(
                    http.post(f"{api}/users/{user_id}/permissions", json={"service_id": service_id}, headers=admin)
                )
            # The researcher's own Michigan token: the service has none in the registry.
            _created(
                http.post(
                    f"{api}/users/me/service-credentials",
                    json={"service_id": michigan["id"], "token": MICHIGAN_TOKEN},
                    headers=user,
                )
            )
            upload = http.post(
                f"{api}/files/upload",
                files={"file": ("target.vcf.gz", (SIM / "target.vcf.gz").read_bytes(), "application/gzip")},
                headers=user,
            )
            target = _created(upload)
            yield World(
                platform=platform,
                http=http,
                admin=admin,
                user=user,
                user_id=user_id,
                michigan_url=michigan_url,
                sapporo=sapporo,
                michigan_service=michigan["id"],
                michigan_panel=michigan_panel["id"],
                wes_service=wes["id"],
                wes_panel=wes_panel["id"],
                target_file=str(target["id"]),
            )
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(10)
        fake_log.close()


def _answers(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _download(world: World, file_id: str, path: Path) -> str:
    digest = hashlib.sha256()
    with world.http.stream("GET", f"{world.api}/files/{file_id}/download", headers=world.user) as response:
        assert response.status_code == 200
        with path.open("wb") as handle:
            for chunk in response.iter_bytes():
                digest.update(chunk)
                handle.write(chunk)
    return digest.hexdigest()


def test_michigan_job_through_the_gateway(world: World, tmp_path: Path) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    created = world.submit(headers=key)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    again = world.submit(headers=key, name=created.json()["name"])
    assert (again.status_code, again.json()["id"]) == (200, job_id)
    job = world.wait_status(job_id, "completed", timeout_s=90)
    assert [h["new_status"] for h in job["status_history"]] == [
        "pending", "queued", "submitting", "running", "downloading", "completed",
    ]  # fmt: skip
    assert world.submissions_of(job_id) == 1
    assert job["status_message"] == "Completed: 4 result files stored with their checksums."
    # The results are in the file manager, linked to the job, and arrive through the gateway unchanged.
    listed = world.http.get(f"{world.api}/jobs/{job_id}/files", headers=world.user).json()
    assert sorted(f["filename"] for f in listed["items"]) == sorted(
        r["name"].replace("/", "_") for r in job["result_files"]
    )
    result = next(r for r in job["result_files"] if r["name"] == "chr_20.zip")
    assert _download(world, result["file_id"], tmp_path / "chr_20.zip") == result["sha256"]
    # The password we generated went with the job, and only the owner reads it back.
    remote = world.fake("GET", f"/jobs/{job['remote_job_id']}")
    password = world.http.get(f"{world.api}/jobs/{job_id}/result-password", headers=world.user).json()["password"]
    assert remote["params"]["password"] == password
    assert remote["params"]["aesEncryption"] == "false"
    assert world.http.get(f"{world.api}/jobs/{job_id}/result-password", headers=world.admin).status_code == 404
    logs = world.http.get(f"{world.api}/jobs/{job_id}/logs", headers=world.user).json()["logs"]
    assert "== Input Validation" in logs


def test_legacy_multipart_form_through_the_gateway(world: World) -> None:
    response = world.http.post(
        f"{world.api}/jobs/",
        data={"name": "legacy form", "service_id": str(world.michigan_service),
              "reference_panel_id": str(world.michigan_panel), "build": "hg19", "phasing": "eagle",
              "population": "eur"},
        files={"input_file": ("chr20.target.vcf.gz", (SIM / "target.vcf.gz").read_bytes(), "application/gzip")},
        headers=world.user,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    job = response.json()
    stored = world.http.get(f"{world.api}/files/{job['input_file_ids'][0]}", headers=world.user).json()
    assert (stored["filename"], stored["owner_id"]) == ("chr20.target.vcf.gz", world.user_id)
    assert stored["sha256"] == hashlib.sha256((SIM / "target.vcf.gz").read_bytes()).hexdigest()
    assert stored["vcf"]["sample_count"] == 50
    assert world.wait_status(job["id"], "completed", timeout_s=90)["phasing"] is True


def test_wes_job_imputes_accurately_through_the_gateway(world: World, tmp_path: Path) -> None:
    created = world.submit(wes=True)
    assert created.status_code == 201, created.text
    job = world.wait_status(created.json()["id"], "completed", timeout_s=300)
    assert [h["new_status"] for h in job["status_history"]][-3:] == ["running", "downloading", "completed"]
    results = {r["name"]: r for r in job["result_files"]}
    assert sorted(results) == ["imputed.beagle.log", "imputed.vcf.gz", "imputed.vcf.gz.tbi"]
    imputed = tmp_path / "imputed.vcf.gz"
    assert _download(world, results["imputed.vcf.gz"]["file_id"], imputed) == results["imputed.vcf.gz"]["sha256"]
    accuracy = evaluate(
        reference=SIM / "ref.vcf.gz", truth=SIM / "truth.vcf.gz", target=SIM / "target.vcf.gz", imputed=imputed
    )
    assert (accuracy.records, len(accuracy.samples), accuracy.missing_in_output) == (6225, 50, 0)
    assert accuracy.concordance >= 0.98
    assert accuracy.mean_r2_maf_over_5pct >= 0.80


def test_cancel_mid_run_on_michigan(world: World) -> None:
    world.fake("PATCH", "/config", json={"job_run_time_s": 120})
    try:
        job_id = world.submit().json()["id"]
        running = world.wait_status(job_id, "running", timeout_s=60)
        cancelled = world.http.post(f"{world.api}/jobs/{job_id}/cancel", headers=world.user)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        wait_until(lambda: world.fake("GET", f"/jobs/{running['remote_job_id']}")["state"] == 6, timeout_s=30)
    finally:
        world.fake("PATCH", "/config", json={"job_run_time_s": 3})


def test_cancel_mid_run_on_wes(world: World) -> None:
    job_id = world.submit(wes=True).json()["id"]
    running = world.wait_status(job_id, "running", timeout_s=60)
    run_dir = world.sapporo.run_dir(running["remote_job_id"])
    wait_until(lambda: (run_dir / "state.txt").read_text().strip() == "RUNNING", timeout_s=60)
    assert world.http.post(f"{world.api}/jobs/{job_id}/cancel", headers=world.user).json()["status"] == "cancelled"
    wait_until(lambda: (run_dir / "state.txt").read_text().strip() == "CANCELED", timeout_s=30)


def test_worker_killed_right_after_submitting(world: World) -> None:
    platform = world.platform
    platform.stop_component("job-worker")
    platform.supervisor.env["JOB_PROCESSOR_PAUSE_AFTER_SUBMIT_S"] = "30"
    platform.restart_component("job-worker")
    job_id = world.submit().json()["id"]
    wait_until(lambda: world.submissions_of(job_id) == 1, timeout_s=60, interval_s=0.1)
    platform.supervisor.stop("job-worker", sig=signal.SIGKILL)
    job = world.job(job_id)
    assert (job["status"], job["remote_job_id"]) == ("submitting", None)  # the server has it, we never wrote it
    del platform.supervisor.env["JOB_PROCESSOR_PAUSE_AFTER_SUBMIT_S"]
    platform.restart_component("job-worker")
    done = world.wait_status(job_id, "completed", timeout_s=90)
    assert world.submissions_of(job_id) == 1
    running = next(h for h in done["status_history"] if h["new_status"] == "running")
    assert running["message"] == f"Found the earlier submission on Michigan fake as {done['remote_job_id']}."


def test_remote_server_down_for_a_while(world: World) -> None:
    world.fake("POST", "/down")
    try:
        job_id = world.submit().json()["id"]

        def waiting() -> dict[str, Any] | None:
            job = world.job(job_id)
            message = job["status_message"] or ""
            return job if message.startswith("Could not submit the job on Michigan fake") else None

        job = wait_until(waiting, timeout_s=60)
        assert job["status"] == "submitting"
        assert "HTTP 503: This functionality is currently under maintenance." in job["status_message"]
    finally:
        world.fake("POST", "/up")
    world.wait_status(job_id, "completed", timeout_s=90)


def test_bad_inputs_are_refused_and_nothing_is_stored(world: World) -> None:
    before = world.http.get(f"{world.api}/jobs", headers=world.user).json()["total"]
    upload = world.http.post(
        f"{world.api}/files/upload",
        files={"file": ("chr22.vcf.gz", (DATA / "seed-samples" / "chr22.hg38.7samples.phased.vcf.gz").read_bytes())},
        headers=world.user,
    )
    small_hg38 = _created(upload)["id"]
    response = world.submit(input_file_ids=[small_hg38])
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "preflight_failed"
    assert {p["code"] for p in body["problems"]} >= {"chr_prefix_hg19", "too_few_samples"}
    assert all(p["file"] == "chr22.vcf.gz" for p in body["problems"])
    assert "Input file 'chr22.vcf.gz' has 7 samples; this service needs at least 20" in body["detail"]
    assert world.submit(reference_panel_id=world.wes_panel).json()["error"] == "panel_not_in_service"
    assert world.submit(input_file_ids=[str(uuid.uuid4())]).json()["error"] == "unknown_input_file"
    assert world.submit(build="GRCh37").json()["error"] == "validation_error"
    assert world.http.get(f"{world.api}/jobs", headers=world.user).json()["total"] == before
