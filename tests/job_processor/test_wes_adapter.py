"""The GA4GH WES adapter against a real WES server (sapporo), running the shipped Beagle workflow on sim-1mb."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from microservices.job_processor import states
from microservices.job_processor.adapters import InputFile, Submission, make_adapter
from microservices.job_processor.adapters.base import PermanentRemoteError, RemoteOutput, TransientRemoteError
from microservices.job_processor.adapters.wes import WesAdapter, parse_outputs
from microservices.job_processor.config import Settings
from tests.job_processor.accuracy import evaluate
from tests.job_processor.localfiles import LocalFiles
from tests.job_processor.sapporo_server import SapporoServer

DATA = Path(__file__).resolve().parents[1] / "data" / "sim-1mb"


def submission(job_id: str, **panel: object) -> Submission:
    return Submission(
        job_id=job_id,
        name="sim-1mb chr20",
        build="hg19",
        phasing=True,
        population=None,
        mode="imputation",
        r2_filter=None,
        panel_remote_id="sim-1mb",
        panel_parameters={
            "reference_vcf": str(DATA / "ref.vcf.gz"),
            "genetic_map": str(DATA / "ref.map"),
            **panel,
        },
        inputs=[InputFile(file_id="target", filename="target.vcf.gz", size_bytes=4343)],
    )


@pytest.fixture
async def adapter(sapporo: SapporoServer) -> AsyncIterator[WesAdapter]:
    async with httpx.AsyncClient() as http:
        made = make_adapter(
            api_type="ga4gh_wes",
            base_url=sapporo.base_url,
            http=http,
            credential=None,
            files=LocalFiles({"target": DATA / "target.vcf.gz"}),
            settings=Settings(),
        )
        assert isinstance(made, WesAdapter)
        yield made


async def wait_for(adapter: WesAdapter, run_id: str, wanted: set[str], timeout_s: float = 180) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = await adapter.status(run_id)
        if status.status in wanted:
            return status.status
        assert time.monotonic() < deadline, f"run {run_id} still {status.remote_state}"
        await asyncio.sleep(0.5)


async def test_service_info_is_ga4gh_shaped(adapter: WesAdapter) -> None:
    info = await adapter.service_info()
    assert list(info["workflow_engine_versions"]) == ["cwltool"]
    assert info["workflow_type_versions"]["CWL"]["workflow_type_version"] == ["v1.0", "v1.1", "v1.2"]


async def test_beagle_workflow_imputes_sim_1mb_accurately(adapter: WesAdapter, tmp_path: Path) -> None:
    job_id = str(uuid.uuid4())
    assert await adapter.find(job_id) is None
    run_id = await adapter.submit(submission(job_id))
    assert await adapter.find(job_id) == run_id  # found again by its tag: a second submission is avoidable
    assert await wait_for(adapter, run_id, {states.DOWNLOADING, states.FAILED}) == states.DOWNLOADING
    outputs = {o.name: o for o in await adapter.outputs(run_id)}
    assert sorted(outputs) == ["imputed.beagle.log", "imputed.vcf.gz", "imputed.vcf.gz.tbi"]
    target = tmp_path / "imputed.vcf.gz"
    digest = hashlib.sha256()
    async with adapter.download(outputs["imputed.vcf.gz"]) as response:
        with target.open("wb") as handle:
            async for chunk in response.aiter_bytes():
                digest.update(chunk)
                handle.write(chunk)
    assert target.read_bytes()[:2] == b"\x1f\x8b"  # BGZF
    accuracy = evaluate(
        reference=DATA / "ref.vcf.gz", truth=DATA / "truth.vcf.gz", target=DATA / "target.vcf.gz", imputed=target
    )
    assert accuracy.records == 6225
    assert accuracy.records_with_ds_and_dr2 == 6225
    assert len(accuracy.samples) == 50
    assert accuracy.missing_in_output == 0
    assert accuracy.concordance >= 0.98
    assert accuracy.mean_r2_maf_over_5pct >= 0.80


async def test_cancel_mid_run(adapter: WesAdapter, sapporo: SapporoServer) -> None:
    run_id = await adapter.submit(submission(str(uuid.uuid4())))
    deadline = time.monotonic() + 60
    while (await adapter.status(run_id)).remote_state not in ("RUNNING",):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    await adapter.cancel(run_id)
    assert await wait_for(adapter, run_id, {states.CANCELLED, states.DOWNLOADING}, timeout_s=30) == states.CANCELLED
    assert (sapporo.run_dir(run_id) / "state.txt").read_text().strip() == "CANCELED"


async def test_a_failing_workflow_fails_with_the_reason(adapter: WesAdapter) -> None:
    run_id = await adapter.submit(submission(str(uuid.uuid4()), reference_vcf="/nonexistent/ref.vcf.gz"))
    assert await wait_for(adapter, run_id, {states.FAILED, states.DOWNLOADING}, timeout_s=120) == states.FAILED
    status = await adapter.status(run_id)
    assert status.remote_state == "EXECUTOR_ERROR"
    assert status.message is not None
    assert status.message.startswith("The workflow failed on the WES node (state EXECUTOR_ERROR, exit code")
    assert status.logs is not None


async def test_unknown_run_and_unreachable_node(adapter: WesAdapter) -> None:
    with pytest.raises(PermanentRemoteError, match="HTTP 404"):
        await adapter.status(str(uuid.uuid4()))
    await adapter.cancel(str(uuid.uuid4()))  # nothing to cancel is not an error
    adapter.base_url = "http://127.0.0.1:9/ga4gh/wes/v1"
    with pytest.raises(TransientRemoteError, match="could not be reached"):
        await adapter.status(str(uuid.uuid4()))


def test_outputs_in_both_forms() -> None:
    listed = parse_outputs([{"file_name": "a.vcf.gz", "file_url": "http://n/runs/1/outputs/a.vcf.gz"}])
    assert [(o.name, o.url) for o in listed] == [("a.vcf.gz", "http://n/runs/1/outputs/a.vcf.gz")]
    cwl = parse_outputs(
        {
            "imputed_vcf": {
                "class": "File",
                "location": "https://n/o/imputed.vcf.gz",
                "basename": "imputed.vcf.gz",
                "size": 10,
                "secondaryFiles": [{"class": "File", "location": "https://n/o/imputed.vcf.gz.tbi"}],
            },
            "local_only": {"class": "File", "location": "file:///tmp/x"},
            "log": "https://n/o/beagle.log",
        }
    )
    assert [(o.name, o.url, o.size_bytes) for o in cwl] == [
        ("imputed.vcf.gz", "https://n/o/imputed.vcf.gz", 10),
        ("imputed.vcf.gz.tbi", "https://n/o/imputed.vcf.gz.tbi", None),
        ("beagle.log", "https://n/o/beagle.log", None),
    ]


async def test_dnastack_exchanges_its_client_registration_for_a_token() -> None:
    import json

    from microservices.job_processor.peers import Credential

    seen: list[tuple[str, str | None, bytes]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("authorization"), await request.aread()))
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "wallet-token", "token_type": "bearer"})
        return httpx.Response(200, json={"run_id": "r1", "state": "RUNNING"})

    registration = {"client_id": "c", "client_secret": "s", "token_url": "https://wallet.test/oauth/token"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        adapter = make_adapter(
            api_type="dnastack",
            base_url="https://wes.test/ga4gh/wes/v1",
            http=http,
            credential=Credential(token=json.dumps(registration), source="service"),
            files=LocalFiles({}),
            settings=Settings(),
        )
        assert (await adapter.status("r1")).status == states.RUNNING
        assert (await adapter.status("r1")).remote_state == "RUNNING"
    assert [(path, auth) for path, auth, _ in seen] == [
        ("/oauth/token", None),
        ("/ga4gh/wes/v1/runs/r1/status", "Bearer wallet-token"),
        ("/ga4gh/wes/v1/runs/r1/status", "Bearer wallet-token"),
    ]
    assert b"resource=https%3A%2F%2Fwes.test%2Fga4gh%2Fwes%2Fv1%2F" in seen[0][2]


async def test_target_sent_as_a_signed_url_is_fetched_by_the_node(adapter: WesAdapter, tmp_path: Path) -> None:
    import http.server
    import threading

    served: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            body = (DATA / "target.vcf.gz").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/files/target/download?expires=1&signature=abc"

    class SignedFiles(LocalFiles):
        async def signed_url(self, file_id: str) -> str:
            return url

    adapter.files = SignedFiles({})
    try:
        run_id = await adapter.submit(submission(str(uuid.uuid4()), input_transfer="signed_url"))
        assert await wait_for(adapter, run_id, {states.DOWNLOADING, states.FAILED}) == states.DOWNLOADING
    finally:
        server.shutdown()
    assert served == ["/files/target/download?expires=1&signature=abc"]
    assert "imputed.vcf.gz" in {o.name for o in await adapter.outputs(run_id)}


def _recording_adapter(
    api_type: str, token: str, seen: list[tuple[str, str | None]], replies: dict[str, httpx.Response] | None = None
) -> tuple[httpx.AsyncClient, Any]:
    from microservices.job_processor.peers import Credential

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        return (replies or {}).get(request.url.path) or httpx.Response(200, content=b"result")

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    adapter = make_adapter(
        api_type=api_type,
        base_url="https://wes.test/ga4gh/wes/v1",
        http=http,
        credential=Credential(token=token, source="user"),
        files=LocalFiles({}),
        settings=Settings(),
    )
    return http, adapter


async def test_downloads_carry_the_token_only_to_the_wes_node_itself() -> None:
    seen: list[tuple[str, str | None]] = []
    http, adapter = _recording_adapter("ga4gh_wes", "user-token", seen)
    async with http:
        for url in (
            "https://wes.test/ga4gh/wes/v1/runs/r1/outputs/a.vcf.gz",
            "https://wes.test:443/b.vcf.gz",
            "https://attacker.test/c.vcf.gz",
            "http://wes.test/d.vcf.gz",
            "https://wes.test:8443/e.vcf.gz",
        ):
            async with adapter.download(RemoteOutput(name=url.rsplit("/", 1)[-1], url=url)) as response:
                assert await response.aread() == b"result"
        with pytest.raises(PermanentRemoteError, match=r"^the server offers f\.vcf\.gz at a file URL$"):
            async with adapter.download(RemoteOutput(name="f.vcf.gz", url="file:///etc/passwd")):
                pass
    assert seen == [
        ("https://wes.test/ga4gh/wes/v1/runs/r1/outputs/a.vcf.gz", "Bearer user-token"),
        ("https://wes.test/b.vcf.gz", "Bearer user-token"),
        ("https://attacker.test/c.vcf.gz", None),
        ("http://wes.test/d.vcf.gz", None),
        ("https://wes.test:8443/e.vcf.gz", None),
    ]


async def test_dnastack_token_url_must_be_https_outside_development() -> None:
    import json

    registration = {"client_id": "c", "client_secret": "s", "token_url": "http://169.254.169.254/latest/meta-data"}
    seen: list[tuple[str, str | None]] = []
    http, adapter = _recording_adapter("dnastack", json.dumps(registration), seen)
    async with http:
        adapter.allow_http_token_url = False
        with pytest.raises(PermanentRemoteError, match=r"^the DNAstack credential's token_url must be an https URL$"):
            await adapter.status("r1")
        registration["token_url"] = "file:///etc/passwd"
        adapter.credential = type(adapter.credential)(token=json.dumps(registration), source="user")
        adapter.allow_http_token_url = True
        with pytest.raises(PermanentRemoteError, match=r"^the DNAstack credential's token_url must be an https URL$"):
            await adapter.status("r1")
    assert seen == []


async def test_dnastack_token_endpoint_replies_never_reach_the_job_message() -> None:
    import json

    registration = {"client_id": "c", "client_secret": "s", "token_url": "https://internal.test/secret"}
    seen: list[tuple[str, str | None]] = []
    secret = httpx.Response(403, json={"message": "internal-secret-value"})
    http, adapter = _recording_adapter("dnastack", json.dumps(registration), seen, {"/secret": secret})
    async with http:
        with pytest.raises(PermanentRemoteError) as refused:
            await adapter.status("r1")
    assert str(refused.value) == (
        "DNAstack token: the token endpoint refused the client registration (HTTP 403); check the credential stored "
        "for this service"
    )
    assert seen == [("https://internal.test/secret", None)]


def test_dnastack_may_use_an_http_token_url_only_in_development_and_test() -> None:
    from microservices.job_processor.adapters.wes import DnastackAdapter

    for environment, allowed in (("development", True), ("test", True), ("production", False)):
        adapter = make_adapter(
            api_type="dnastack",
            base_url="https://wes.test",
            http=httpx.AsyncClient(),
            credential=None,
            files=LocalFiles({}),
            settings=Settings().model_copy(update={"environment": environment}),
        )
        assert isinstance(adapter, DnastackAdapter)
        assert adapter.allow_http_token_url is allowed
