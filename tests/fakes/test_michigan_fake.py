"""The Michigan fake keeps the contract of protocols/michigan.md: paths, auth, shapes, states, downloads."""

import gzip
import io
import re
import subprocess
import sys
import zipfile

import httpx
import pytest

from microservices.common.localinfra import free_port
from tests.fakes.michigan import make_app
from tests.harness import wait_until

TOKEN = "michigan-test-token"
AUTH = {"X-Auth-Token": TOKEN}


class Clock:
    def __init__(self) -> None:
        self.now = 1_735_732_800.0  # 2025-01-01T12:00:00Z

    def __call__(self) -> float:
        return self.now


def vcf_gz(chromosome: str = "20") -> bytes:
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    text = f"{header}{chromosome}\t100\t.\tA\tG\t.\tPASS\t.\n"
    return gzip.compress(text.encode())


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(clock):
    return make_app(token=TOKEN, username="alice", users={"other-token": "bob"}, job_run_time_s=10, clock=clock)


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://michigan") as c:
        yield c


async def submit(client, **fields):
    data = {"refpanel": "apps@1000g-phase-3-v5@2.0.0", "build": "hg19", "population": "eur", **fields}
    files = [("files", ("chr20.vcf.gz", vcf_gz("20"), "application/gzip"))]
    return await client.post("/api/v2/jobs/submit/imputationserver2", data=data, files=files, headers=AUTH)


async def test_server_info_lists_apps_only_with_a_token(client):
    anonymous = (await client.get("/api/v2/server")).json()
    assert anonymous["apps"] == []
    assert anonymous["loggedIn"] is False
    assert "user" not in anonymous
    assert anonymous["maintenace"] is False
    known = (await client.get("/api/v2/server", headers=AUTH)).json()
    assert known["apps"] == [{"id": "imputationserver2@2.0.12", "name": "Genotype Imputation", "version": "2.0.12"}]
    assert known["user"]["username"] == "alice"
    assert known["loggedIn"] is True


async def test_app_params_carry_panels_and_populations_bound_to_them(client):
    response = await client.get("/api/v2/server/apps/imputationserver2@2.0.12", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "imputationserver2"
    params = {p["id"]: p for p in body["params"]}
    assert params["refpanel"]["type"] == "app_list"
    assert params["refpanel"]["values"][1] == {"key": "apps@hapmap-2@2.0.0", "value": "HapMap 2"}
    population = params["population"]
    assert population["type"] == "binded_list"
    assert population["bind"] == "refpanel"
    assert population["values"][1] == {
        "key": "apps@hapmap-2@2.0.0",
        "value": "HapMap 2",
        "values": [{"key": "eur", "value": "EUR"}],
    }
    assert (await client.get("/api/v2/server/apps/imputationserver2")).status_code == 401
    missing = await client.get("/api/v2/server/apps/nope", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Application 'nope' not found."}


async def test_token_verify_is_anonymous_and_always_200(client):
    good = await client.post("/api/v2/tokens/verify", data={"token": TOKEN})
    assert good.status_code == 200
    assert good.json()["valid"] is True
    assert good.json()["message"] == "API Token was created by alice and is valid."
    bad = await client.post("/api/v2/tokens/verify", data={"token": "wrong"})
    assert bad.status_code == 200
    assert bad.json()["valid"] is False
    assert bad.json()["message"] == "Invalid API Token."


@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "wrong"}, {"Authorization": f"Bearer {TOKEN}"}])
async def test_bad_or_missing_token_is_401_with_an_empty_body(client, headers):
    response = await client.get("/api/v2/jobs", headers=headers)
    assert response.status_code == 401
    assert response.content == b""


async def test_job_moves_through_the_numeric_states_and_publishes_outputs(client, clock):
    response = await submit(client, **{"job-name": "study-1"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Your job was successfully added to the job queue."
    job_id = body["id"]
    assert re.fullmatch(r"job-20250101-120000-\d{3}", job_id)
    states = []
    for elapsed in (0, 3, 9, 10):
        clock.now += elapsed - (clock.now - 1_735_732_800.0)
        job = (await client.get(f"/api/v2/jobs/{job_id}/status", headers=AUTH)).json()
        states.append(job["state"])
    assert states == [1, 2, 3, 4]
    assert job["name"] == "study-1"
    assert job["applicationId"] == "imputationserver2"
    assert job["positionInQueue"] == -1
    assert job["submittedOn"] == 1_735_732_800_000
    assert job["endTime"] == 1_735_732_810_000
    assert [s["name"] for s in job["steps"]] == [
        "Input Validation",
        "Quality Control",
        "Phasing and Imputation",
        "Summary",
    ]
    assert job["steps"][0]["logMessages"][0]["message"].startswith("1 valid VCF file(s) found.")
    (output,) = job["outputParams"]
    assert output["name"] == "output"
    assert output["download"] is True
    names = [f["name"] for f in output["files"]]
    assert names == ["qc_report.txt", "quality-control.html", "statistics/snps-excluded.txt", "chr_20.zip"]
    zip_file = output["files"][3]
    assert zip_file["count"] == 10
    assert re.fullmatch(r"\d+ (bytes|KB)", zip_file["size"])
    assert zip_file["path"] == f"{job_id}/output/chr_20.zip"
    downloaded = await client.get(f"/share/results/{zip_file['hash']}/chr_20.zip")
    assert downloaded.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(downloaded.content)).namelist() == ["chr20.dose.vcf.gz", "chr20.info.gz"]


async def test_downloads_count_down_and_stop_at_the_limit(app, client, clock):
    app.state.fake.download_limit = 2
    job_id = (await submit(client)).json()["id"]
    clock.now += 10
    files = (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()["outputParams"][0]["files"]
    report = files[0]
    first = await client.get(f"/share/results/{report['hash']}/qc_report.txt")
    second = await client.get(f"/downloads/{job_id}/{report['hash']}/qc_report.txt")
    third = await client.get(f"/share/results/{report['hash']}/qc_report.txt")
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 400
    assert third.json() == {"success": False, "message": "number of max downloads exceeded."}
    after = (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()["outputParams"][0]["files"][0]
    assert after["count"] == 0
    unknown = await client.get("/share/results/deadbeef/qc_report.txt")
    assert unknown.status_code == 404
    assert unknown.json() == {"success": False, "message": "download not found."}


async def test_get_script_and_browse_find_files_by_the_output_hash(client, clock):
    job_id = (await submit(client)).json()["id"]
    clock.now += 10
    output = (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()["outputParams"][0]
    script = (await client.get(f"/get/{output['hash']}")).text
    first = output["files"][0]
    assert script.splitlines()[0] == (
        f"curl -L http://michigan/share/results/{first['hash']}/qc_report.txt -o qc_report.txt --create-dirs"
    )
    browsed = await client.get(f"/browse/{output['hash']}/statistics/snps-excluded.txt")
    assert browsed.status_code == 200
    assert browsed.content == b"#Position\tFilterType\tInfo\n"


async def test_checkbox_present_means_on_whatever_its_value(app, client):
    job_id = (await submit(client, aesEncryption="false")).json()["id"]
    params = app.state.fake.jobs[job_id].params
    assert params["aesEncryption"] == "true"
    assert params["meta"] == "false"


async def test_input_prefix_is_stripped_and_unknown_fields_are_400(app, client):
    job_id = (await submit(client, **{"input-phasing": "beagle"})).json()["id"]
    assert app.state.fake.jobs[job_id].params["phasing"] == "beagle"
    response = await submit(client, **{"files-source": "http"})
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Parameter 'files-source' not found."}


async def test_unknown_app_on_submit_is_404(client):
    response = await client.post("/api/v2/jobs/submit/minimac9", data={"refpanel": "hapmap-2"}, headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Application 'minimac9' not found."}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"refpanel": "apps@nope@1.0"}, "Reference panel 'apps@nope@1.0' not found."),
        ({"population": "afr", "refpanel": "hapmap-2"}, "Population 'afr' is not supported by reference panel"),
        ({"build": "hg17"}, "Unsupported build 'hg17'."),
    ],
)
async def test_wrong_list_values_are_accepted_then_fail_late(client, clock, fields, message):
    response = await submit(client, **fields)
    assert response.status_code == 200
    job_id = response.json()["id"]
    assert (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()["state"] == 1
    clock.now += 10
    job = (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()
    assert job["state"] == 5
    assert job["outputParams"] == []
    last = job["steps"][-1]
    assert last["name"] == "Input Validation"
    assert last["logMessages"][0]["type"] == 1
    assert last["logMessages"][0]["message"].startswith(message)


async def test_fail_late_option_fails_every_job_in_quality_control(app, client, clock):
    app.state.fake.fail_late = True
    job_id = (await submit(client)).json()["id"]
    clock.now += 5
    assert (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()["state"] == 2
    clock.now += 5
    job = (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()
    assert job["state"] == 5
    assert job["steps"][-1]["name"] == "Quality Control"
    assert job["steps"][-1]["logMessages"][0]["message"] == (
        "No chunks passed the QC step. Imputation cannot be started!"
    )


async def test_concurrent_job_limit_per_user(client):
    assert (await submit(client)).status_code == 200
    assert (await submit(client)).status_code == 200
    third = await submit(client)
    assert third.status_code == 400
    assert third.json() == {"success": False, "message": "Only 2 jobs per user can be executed simultaneously."}


async def test_cancel_is_a_get_and_gives_state_6(client):
    job_id = (await submit(client)).json()["id"]
    response = await client.get(f"/api/v2/jobs/{job_id}/cancel", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["state"] == 6
    assert (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()["state"] == 6


async def test_list_is_a_page_object_of_the_callers_jobs(client, clock):
    first = (await submit(client)).json()["id"]
    clock.now += 0.001
    second = (await submit(client)).json()["id"]
    everything = (await client.get("/api/v2/jobs", headers=AUTH)).json()
    assert everything["count"] == 2
    assert everything["pageSize"] == 2
    assert [j["id"] for j in everything["data"]] == [second, first]
    paged = (await client.get("/api/v2/jobs?page=1", headers=AUTH)).json()
    assert (paged["page"], paged["pageSize"], paged["pages"], paged["prev"], paged["next"]) == (1, 15, [1], None, None)
    assert (await client.get("/api/v2/jobs", headers={"X-Auth-Token": "other-token"})).json()["count"] == 0


async def test_another_users_job_is_403_and_a_missing_one_404(client):
    job_id = (await submit(client)).json()["id"]
    other = await client.get(f"/api/v2/jobs/{job_id}", headers={"X-Auth-Token": "other-token"})
    assert other.status_code == 403
    assert other.json() == {"success": False, "message": "Access denied."}
    missing = await client.get("/api/v2/jobs/job-20990101-000000-000", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Job job-20990101-000000-000 not found."}


async def test_delete_with_an_api_token_is_403_and_restart_needs_a_dead_job(client):
    job_id = (await submit(client)).json()["id"]
    assert (await client.delete(f"/api/v2/jobs/{job_id}", headers=AUTH)).status_code == 403
    restart = await client.get(f"/api/v2/jobs/{job_id}/restart", headers=AUTH)
    assert restart.status_code == 400
    assert restart.json() == {"success": False, "message": f"Job {job_id} is not pending."}
    await client.post(f"/_fake/jobs/{job_id}/state", json={"state": -1})
    assert (await client.get(f"/api/v2/jobs/{job_id}/restart", headers=AUTH)).json()["success"] is True
    assert (await client.get(f"/api/v2/jobs/{job_id}", headers=AUTH)).json()["state"] == 1


async def test_down_switch_answers_503_maintenance_until_up(client):
    await client.post("/_fake/down")
    response = await client.get("/api/v2/server")
    assert response.status_code == 503
    assert response.json() == {"success": False, "message": "This functionality is currently under maintenance."}
    await client.post("/_fake/up")
    assert (await client.get("/api/v2/server")).status_code == 200


async def test_config_control_replaces_panels_and_counts_polls(client):
    await client.patch(
        "/_fake/config",
        json={"panels": [{"id": "h3africa-v6", "version": "1.0", "name": "H3Africa", "populations": {"afr": "AFR"}}]},
    )
    app_json = (await client.get("/api/v2/server/apps/imputationserver2", headers=AUTH)).json()
    refpanel = next(p for p in app_json["params"] if p["id"] == "refpanel")
    assert refpanel["values"] == [{"key": "apps@h3africa-v6@1.0", "value": "H3Africa"}]
    job_id = (await submit(client, refpanel="h3africa-v6", population="afr")).json()["id"]
    await client.get(f"/api/v2/jobs/{job_id}/status", headers=AUTH)
    control = (await client.get(f"/_fake/jobs/{job_id}")).json()
    assert control["status_polls"] == 1
    assert control["inputs"][0]["chromosome"] == "20"
    assert control["failure"] is None


def test_runs_as_a_process_on_its_port():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.michigan", "--port", str(port), "--token", TOKEN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v2/server", headers=AUTH, timeout=1)
            except httpx.HTTPError:
                return None

        response = wait_until(answers, timeout_s=20)
        assert response.json()["user"]["username"] == "testuser"
    finally:
        process.terminate()
        process.wait(timeout=10)
