"""The web UI end to end in a real browser: `frontend/e2e/run.mjs` (playwright-core driving Debian's chromium)
against the real platform, whose gateway serves the built front end, with the Michigan fake and a real GA4GH WES
server (sapporo running Beagle) registered, so that a job runs on each through the browser.

Skipped when chromium, node, frontend/node_modules or frontend/dist is missing, unless E2E_REQUIRED is set (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from microservices.common.localinfra import free_port
from tests.harness import ROOT, Platform, wait_until
from tests.job_processor.sapporo_server import start_sapporo

pytestmark = pytest.mark.integration

FRONTEND = ROOT / "frontend"
SIM = ROOT / "tests" / "data" / "sim-1mb"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
MICHIGAN_TOKEN = f"mis-{uuid.uuid4().hex}"
BROWSER_ENV: dict[str, str | None] = {
    "GATEWAY_FRONTEND_DIR": str(FRONTEND / "dist"),
    # Jobs polled every second, as in tests/integration/test_jobs.py, so that the browser sees them end quickly.
    "JOB_PROCESSOR_POLL_INTERVAL_OVERRIDE_S": "1",
    "JOB_PROCESSOR_POLL_TICK_S": "1",
}


def _missing() -> list[str]:
    needs = {
        f"chromium ({CHROMIUM})": Path(CHROMIUM).exists(),
        "node": shutil.which("node") is not None,
        "frontend/node_modules": (FRONTEND / "node_modules" / "playwright-core").exists(),
        "frontend/dist (npm run build)": (FRONTEND / "dist" / "index.html").exists(),
    }
    return [name for name, present in needs.items() if not present]


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = _missing()
    if missing and not os.environ.get("E2E_REQUIRED"):
        pytest.skip(f"browser run needs {', '.join(missing)} (set E2E_REQUIRED=1 to fail instead)")
    assert not missing, f"E2E_REQUIRED is set but {', '.join(missing)} is missing"


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _answers(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def registered(
    browser_ready: None, platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The gateway serving frontend/dist, and a Michigan fake and a WES node each registered with one panel."""
    before = {key: platform.supervisor.env.get(key) for key in BROWSER_ENV}
    _restart_with(platform, BROWSER_ENV)
    port = free_port()
    # Remote jobs run 5 s: long enough that the browser's "cancel a running job" finds it still running on a busy
    # machine, short enough for the whole test to stay near a minute.
    fake_log = (tmp_path_factory.mktemp("michigan") / "fake.log").open("ab")
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.michigan", "--port", str(port), "--token", MICHIGAN_TOKEN,
         "--job-run-time", "5", "--max-concurrent-jobs", "10"],
        cwd=ROOT, stdout=fake_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    michigan_url = f"http://127.0.0.1:{port}"
    api = f"{platform.url('gateway')}/api"
    password = platform.env["BOOTSTRAP_ADMIN_PASSWORD"]
    try:
        with start_sapporo(tmp_path_factory.mktemp("sapporo")) as sapporo, httpx.Client(timeout=30) as http:
            wait_until(lambda: _answers(http, f"{michigan_url}/api/v2/server"), timeout_s=30)
            login = _created(http.post(f"{api}/auth/login", json={"username": "admin", "password": password}))
            admin = {"Authorization": f"Bearer {login['access_token']}"}
            michigan = _created(
                http.post(
                    f"{api}/services",
                    json={"name": "Michigan fake", "api_type": "michigan", "base_url": michigan_url,
                          "auth_mode": "api_token", "poll_interval_s": 10},
                    headers=admin,
                )
            )  # fmt: skip
            _created(
                http.post(
                    f"{api}/services/{michigan['id']}/panels",
                    json={"panel_id": "apps@1000g-phase-3-v5@2.0.0", "name": "1000G Phase 3", "build": "hg19",
                          "populations": ["eur", "all"]},
                    headers=admin,
                )
            )  # fmt: skip
            # The admin may use every service (all_services), but a Michigan server wants the user's own token.
            _created(
                http.post(
                    f"{api}/users/me/service-credentials",
                    json={"service_id": michigan["id"], "token": MICHIGAN_TOKEN},
                    headers=admin,
                )
            )
            wes = _created(
                http.post(
                    f"{api}/services",
                    json={"name": "WES node", "api_type": "ga4gh_wes", "base_url": sapporo.base_url,
                          "supported_builds": ["hg19"], "poll_interval_s": 10},
                    headers=admin,
                )
            )  # fmt: skip
            _created(
                http.post(
                    f"{api}/services/{wes['id']}/panels",
                    json={"panel_id": "sim-1mb", "name": "Simulated 1 Mb", "build": "hg19",
                          "parameters": {"reference_vcf": str(SIM / "ref.vcf.gz"),
                                         "genetic_map": str(SIM / "ref.map")}},
                    headers=admin,
                )
            )  # fmt: skip
            yield {
                "E2E_BASE_URL": platform.url("gateway"),
                "E2E_USERNAME": "admin",
                "E2E_PASSWORD": password,
                # Only these two: services other tests of the session registered may point at stopped servers.
                "E2E_SERVICE_IDS": f"{michigan['id']},{wes['id']}",
            }
            # And these two leave with the servers behind them, so that later tests do not meet them.
            for service_id in (michigan["id"], wes["id"]):
                assert http.delete(f"{api}/services/{service_id}", headers=admin).status_code == 204
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(10)
        fake_log.close()
        # The platform is the session's: later tests get it back as it was.
        _restart_with(platform, before)


def _restart_with(platform: Platform, env: dict[str, str | None]) -> None:
    for key, value in env.items():
        if value is None:
            platform.supervisor.env.pop(key, None)
        else:
            platform.supervisor.env[key] = value
    for name in ("gateway", "job_processor", "job-worker"):
        platform.stop_component(name)
        platform.restart_component(name)


@pytest.mark.timeout(600)
def test_the_web_ui_in_a_browser(registered: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Every check of run.mjs passes: pages, axe, phone width, API token, deactivation, a job on each service."""
    started = time.monotonic()
    run = subprocess.run(
        ["node", "e2e/run.mjs"],
        cwd=FRONTEND,
        env={**os.environ, **registered, "E2E_VCF": str(SIM / "target.vcf.gz"), "CHROMIUM_PATH": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=480,
    )
    lines = run.stdout.splitlines()
    # The per-check lines go to the terminal whatever the outcome, also when pytest captures output.
    with capsys.disabled():
        print(f"\nrun.mjs ({time.monotonic() - started:.0f} s):\n{run.stdout}{run.stderr}")
    assert run.returncode == 0, f"run.mjs exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    results = json.loads((FRONTEND / "e2e" / "output" / "results.json").read_text())
    checks = [r["name"] for r in results if not r.get("skipped")]
    assert [r for r in results if r.get("skipped") or not r["ok"]] == [], lines
    # Both services were driven through the browser: three job checks each.
    for service in ("Michigan fake", "WES node"):
        assert sum(1 for name in checks if name.startswith(f"job on {service}:")) == 3, checks


def test_every_call_of_the_api_client_exists_in_the_gateways_openapi(registered: dict[str, str]) -> None:
    """frontend/scripts/check-api.mjs: each method and path in src/api/index.ts is in the merged OpenAPI."""
    run = subprocess.run(
        ["node", "scripts/check-api.mjs", f"{registered['E2E_BASE_URL']}/api/openapi.json"],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert " checked against " in run.stdout and "not in the OpenAPI" not in run.stdout, run.stdout
