"""The Michigan adapter against the fake (protocols/michigan.md), in process: app discovery, 401, the checkbox rule,
state mapping, and the download count running out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from microservices.job_processor import states
from microservices.job_processor.adapters import InputFile, Submission, make_adapter
from microservices.job_processor.adapters.base import PermanentRemoteError
from microservices.job_processor.adapters.michigan import MichiganAdapter
from microservices.job_processor.config import Settings
from microservices.job_processor.peers import Credential
from tests.fakes.michigan import FakeMichigan, make_app
from tests.job_processor.localfiles import LocalFiles

DATA = Path(__file__).resolve().parents[1] / "data" / "sim-1mb"


def submission(**panel: Any) -> Submission:
    return Submission(
        job_id="0b7e2a8e-0000-4000-8000-000000000001",
        name="cohort",
        build="hg19",
        phasing=False,
        population="eur",
        mode="qc_only",
        r2_filter=0.3,
        panel_remote_id="apps@hapmap-2@2.0.0",
        panel_parameters=panel,
        inputs=[InputFile(file_id="t", filename="chr20.vcf.gz")],
        result_password="pw",
    )


@pytest.fixture
def fake_app() -> Any:
    return make_app(token="good", job_run_time_s=0.0)


@pytest.fixture
async def adapter(fake_app: Any) -> AsyncIterator[MichiganAdapter]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake_app)) as http:
        made = make_adapter(
            api_type="michigan",
            base_url="http://mis.test",
            http=http,
            credential=Credential(token="good", source="service"),
            files=LocalFiles({"t": DATA / "target.vcf.gz"}),
            settings=Settings(),
        )
        assert isinstance(made, MichiganAdapter)
        yield made


async def test_app_id_is_discovered_from_the_server(adapter: MichiganAdapter) -> None:
    assert await adapter.app_id() == "imputationserver2@2.0.12"


async def test_a_bad_token_is_a_permanent_401(adapter: MichiganAdapter) -> None:
    adapter.credential = Credential(token="bad", source="user")
    with pytest.raises(PermanentRemoteError, match=r"refused our credentials \(HTTP 401\)"):
        await adapter.find("x")


async def test_fields_sent_and_the_checkbox_rule(adapter: MichiganAdapter, fake_app: Any) -> None:
    fake: FakeMichigan = fake_app.state.fake
    remote_id = await adapter.submit(submission(meta=True, aesEncryption=False))
    params = fake.jobs[remote_id].params
    assert params == {
        "refpanel": "apps@hapmap-2@2.0.0",
        "build": "hg19",
        "phasing": "no_phasing",
        "mode": "qc_only",
        "population": "eur",
        "r2Filter": "0.3",
        "password": "pw",
        "meta": "true",
        "aesEncryption": "false",  # never sent: sending it, even as "false", would switch it on
    }
    assert fake.jobs[remote_id].inputs[0]["name"] == "chr20.vcf.gz"
    assert await adapter.find(submission().job_id) == remote_id


@pytest.mark.parametrize(
    ("state", "ours", "message"),
    [
        (1, states.RUNNING, "Waiting in the Michigan server's queue"),
        (3, states.RUNNING, "Exporting results"),
        (4, states.DOWNLOADING, "The Michigan server finished the job."),
        (8, states.DOWNLOADING, "The Michigan server finished the job."),
        (6, states.CANCELLED, "The job was cancelled on the Michigan server."),
        (7, states.FAILED, "The Michigan server has retired the job and deleted its results."),
        (-1, states.FAILED, "The Michigan server restarted while the job was waiting; resubmit it."),
    ],
)
async def test_states_map_onto_ours(
    adapter: MichiganAdapter, fake_app: Any, state: int, ours: str, message: str
) -> None:
    remote_id = await adapter.submit(submission())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake_app), base_url="http://mis.test") as control:
        assert (await control.post(f"/_fake/jobs/{remote_id}/state", json={"state": state})).status_code == 200
    status = await adapter.status(remote_id)
    assert (status.status, status.remote_state) == (ours, str(state))
    assert status.message is not None
    assert status.message.startswith(message)


async def test_the_download_count_runs_out(adapter: MichiganAdapter, fake_app: Any) -> None:
    fake_app.state.fake.download_limit = 1
    remote_id = await adapter.submit(submission())
    assert (await adapter.status(remote_id)).status == states.DOWNLOADING
    output = next(o for o in await adapter.outputs(remote_id) if o.name == "qc_report.txt")
    assert output.url.startswith("http://mis.test/share/results/")
    async with adapter.download(output) as response:
        assert (await response.aread()).startswith(b"Samples: 0")
    with pytest.raises(PermanentRemoteError, match=r"HTTP 400: number of max downloads exceeded\."):
        async with adapter.download(output):
            pass
