"""The worker's steps (submit, poll, collect, cancel, sweep) against the Michigan fake, in process, on a real database:
at-most-once submission, backoff with a reason, the deadline, late failures, the download limit, checksums."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from microservices.job_processor import processing, states
from microservices.job_processor.crypto import encrypt, make_fernet
from microservices.job_processor.models import Job, JobStatusHistory
from tests.fakes.michigan import FakeMichigan, make_app
from tests.job_processor.inprocess import FileManagerStub, peers_factory
from tests.job_processor.stubs import PeerStub

DATA = Path(__file__).resolve().parents[1] / "data" / "sim-1mb"
OWNER = 9001
PASSWORD = "Zq3-result-password"


@dataclass
class World:
    stub: PeerStub
    files: FileManagerStub
    fake: FakeMichigan
    created: list[uuid.UUID]

    def make_job(self, **overrides: Any) -> str:
        settings = processing.runtime().settings
        fields: dict[str, Any] = dict(
            id=uuid.uuid4(),
            user_id=OWNER,
            name="chr20 <study>",
            service_id=1,
            service_name="Michigan",
            api_type="michigan",
            reference_panel_id=11,
            panel_remote_id="apps@1000g-phase-3-v5@2.0.0",
            panel_parameters={},
            build="hg19",
            phasing=True,
            population="eur",
            mode="imputation",
            r2_filter=None,
            input_file_ids=["in1"],
            input_files=[{"id": "in1", "filename": "chr20.vcf.gz", "size_bytes": 4343}],
            status=states.QUEUED,
            progress=0,
            result_files=[],
            failures=0,
            poll_interval_s=0.2,
            result_password_encrypted=encrypt(make_fernet(settings), PASSWORD),
        )
        job = Job(**{**fields, **overrides})
        with processing.runtime().sessions() as session:
            session.add(job)
            session.commit()
        self.created.append(job.id)
        return str(job.id)

    def job(self, job_id: str) -> Job:
        with processing.runtime().sessions() as session:
            job = session.get(Job, uuid.UUID(job_id))
            assert job is not None
            return job

    def history(self, job_id: str) -> list[tuple[str | None, str]]:
        with processing.runtime().sessions() as session:
            rows = session.scalars(
                select(JobStatusHistory)
                .where(JobStatusHistory.job_id == uuid.UUID(job_id))
                .order_by(JobStatusHistory.id)
            )
            return [(h.old_status, h.new_status) for h in rows]

    def run_to_end(self, job_id: str, *, max_polls: int = 200) -> Job:
        import time

        for _ in range(max_polls):
            job = self.job(job_id)
            if job.status in states.TERMINAL:
                return job
            processing.poll_job(job_id)
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} is still {self.job(job_id).status}")


@pytest.fixture
def world(databases: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    monkeypatch.setenv("JOB_PROCESSOR_VAR_DIR", str(tmp_path))
    processing.runtime.cache_clear()
    settings = processing.runtime().settings
    settings.min_poll_interval_s = 0.1
    settings.max_backoff_s = 0.5
    stub = PeerStub.default()
    stub.services[1]["base_url"] = "http://michigan.test"
    stub.service_credentials[1] = "test-token"
    files = FileManagerStub(inputs={"in1": DATA / "target.vcf.gz"})
    app = make_app(token="test-token", job_run_time_s=0.4)
    monkeypatch.setattr(processing, "peers_factory", peers_factory(stub, files, {"michigan.test": app}))
    world = World(stub=stub, files=files, fake=app.state.fake, created=[])
    yield world
    with processing.runtime().sessions() as session:
        session.execute(delete(Job).where(Job.id.in_(world.created)))
        session.commit()
    processing.runtime().engine.dispose()
    processing.runtime.cache_clear()


def test_job_runs_to_completion_with_results_checksummed(world: World) -> None:
    job_id = world.make_job()
    assert processing.submit_job(job_id) == "submitted"
    job = world.job(job_id)
    assert job.status == states.RUNNING
    assert job.status_message == f"Submitted to Michigan as {job.remote_job_id}."
    remote = world.fake.jobs[str(job.remote_job_id)]
    # What the server stored: our tag in the name, the password we generated, no checkbox switched on.
    assert remote.name == f"chr20 &lt;study&gt; [fi:{job_id}]"
    assert remote.params["password"] == PASSWORD
    assert remote.params["aesEncryption"] == "false"
    assert remote.params["meta"] == "false"
    assert remote.params["refpanel"] == "apps@1000g-phase-3-v5@2.0.0"
    assert remote.params["phasing"] == "eagle"
    assert remote.params["mode"] == "imputation"
    assert remote.inputs[0]["sha256"] == __import__("hashlib").sha256((DATA / "target.vcf.gz").read_bytes()).hexdigest()
    done = world.run_to_end(job_id)
    assert done.status == states.COMPLETED, done.status_message
    assert done.progress == 100
    names = sorted(r["name"] for r in done.result_files)
    assert names == ["chr_20.zip", "qc_report.txt", "quality-control.html", "statistics/snps-excluded.txt"]
    for entry in done.result_files:
        stored = world.files.results[entry["file_id"]]
        assert stored["sha256"] == entry["sha256"]
        assert stored["owner_id"] == OWNER
        assert stored["job_id"] == job_id
        assert stored["purpose"] == "result"
    # Each result was downloaded exactly once (Michigan counts downloads).
    assert sorted(o.count for o in remote.outputs) == [9, 9, 9, 9]
    assert world.history(job_id) == [
        ("queued", "submitting"),
        ("submitting", "running"),
        ("running", "downloading"),
        ("downloading", "completed"),
    ]
    assert "Input Validation" in (done.logs or "")


def test_a_worker_that_died_after_submitting_does_not_submit_twice(world: World) -> None:
    job_id = world.make_job()
    assert processing.submit_job(job_id) == "submitted"
    # Replay the crash: the server has the job, but the database write of its id never happened.
    with processing.runtime().sessions() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        first_remote = job.remote_job_id
        job.remote_job_id = None
        job.status = states.SUBMITTING
        session.commit()
    assert processing.submit_job(job_id) == "adopted"
    job = world.job(job_id)
    assert job.remote_job_id == first_remote
    assert job.status == states.RUNNING
    assert job.status_message == f"Found the earlier submission on Michigan as {first_remote}."
    assert len(world.fake.jobs) == 1


def test_a_second_submit_of_a_submitted_job_does_nothing(world: World) -> None:
    job_id = world.make_job()
    assert processing.submit_job(job_id) == "submitted"
    assert processing.submit_job(job_id) == "nothing to do"
    assert len(world.fake.jobs) == 1


def test_remote_outage_backs_off_with_a_reason_then_recovers(world: World) -> None:
    job_id = world.make_job()
    world.fake.down = "maintenance"
    assert processing.submit_job(job_id) == "failed"
    job = world.job(job_id)
    assert job.status == states.SUBMITTING
    assert job.failures == 1
    assert job.status_message == (
        "Could not submit the job on Michigan (Michigan server info: the server answered HTTP 503: This functionality "
        "is currently under maintenance.); retrying in 0 s."
    )
    assert processing.submit_job(job_id) == "failed"
    assert world.job(job_id).failures == 2
    world.fake.down = None
    assert processing.submit_job(job_id) == "submitted"
    job = world.job(job_id)
    assert (job.status, job.failures, job.failing_since) == (states.RUNNING, 0, None)
    assert world.run_to_end(job_id).status == states.COMPLETED


def test_remote_outage_past_the_deadline_fails_the_job_in_plain_words(world: World) -> None:
    processing.runtime().settings.remote_failure_deadline_s = 0
    job_id = world.make_job()
    world.fake.down = "maintenance"
    assert processing.submit_job(job_id) == "failed"
    job = world.job(job_id)
    assert job.status == states.FAILED
    assert job.error_message is not None
    assert job.error_message.startswith("Gave up: could not submit the job on Michigan for 0 s (Michigan server info:")


def test_a_late_failure_fails_the_job_with_the_servers_message(world: World) -> None:
    world.fake.fail_late = True
    job_id = world.make_job()
    processing.submit_job(job_id)
    job = world.run_to_end(job_id)
    assert job.status == states.FAILED
    assert job.remote_state == "5"
    assert job.error_message is not None
    assert job.error_message.startswith("The Michigan server reports the job failed: ")


def test_download_limit_exhausted_fails_the_job(world: World) -> None:
    world.fake.download_limit = 0
    job_id = world.make_job()
    processing.submit_job(job_id)
    job = world.run_to_end(job_id)
    assert job.status == states.FAILED
    assert job.error_message is not None
    assert "number of max downloads exceeded." in job.error_message


def test_bad_token_fails_the_job_saying_so(world: World) -> None:
    world.stub.service_credentials[1] = "wrong-token"
    job_id = world.make_job()
    assert processing.submit_job(job_id) == "failed"
    job = world.job(job_id)
    assert job.status == states.FAILED
    assert job.error_message == (
        "Failed to submit the job: the Michigan server did not accept the API token (it answers as to an anonymous "
        "visitor); check the token stored for this service."
    )


def test_the_users_own_token_wins_over_the_services(world: World) -> None:
    world.stub.service_credentials[1] = "wrong-token"
    world.stub.user_credentials[(OWNER, 1)] = "test-token"
    job_id = world.make_job()
    assert processing.submit_job(job_id) == "submitted"


def test_a_damaged_result_is_not_accepted(world: World) -> None:
    world.files.corrupt_uploads = True
    job_id = world.make_job()
    processing.submit_job(job_id)
    for _ in range(100):
        processing.poll_job(job_id)
        if world.job(job_id).status == states.DOWNLOADING and world.job(job_id).failures:
            break
        __import__("time").sleep(0.05)
    job = world.job(job_id)
    assert job.status == states.DOWNLOADING
    assert job.result_files == []
    assert job.status_message is not None
    assert "arrived damaged" in job.status_message
    world.files.corrupt_uploads = False
    assert world.run_to_end(job_id).status == states.COMPLETED


def test_cancel_reaches_the_remote_server(world: World) -> None:
    world.fake.job_run_time_s = 30
    job_id = world.make_job()
    processing.submit_job(job_id)
    with processing.runtime().sessions() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        processing.service.set_status_sync(session=session, job=job, new_status=states.CANCELLED, message="by user")
        session.commit()
    assert processing.cancel_remote(job_id) == "cancelled"
    remote_id = world.job(job_id).remote_job_id
    assert world.fake.state_of(world.fake.jobs[str(remote_id)]) == 6


def test_sweep_queues_scheduled_jobs_and_hands_out_due_polls(world: World) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    scheduled = world.make_job(status=states.PENDING, run_at=past)
    future = world.make_job(status=states.PENDING, run_at=datetime.now(UTC) + timedelta(hours=1))
    running = world.make_job(status=states.RUNNING, remote_job_id="job-x", next_poll_at=past)
    not_due = world.make_job(status=states.RUNNING, remote_job_id="job-y", next_poll_at=past + timedelta(hours=1))
    work = processing.sweep()
    assert sorted(work) == sorted([("jobs.submit", scheduled), ("jobs.poll", running)])
    assert world.job(scheduled).status == states.QUEUED
    assert world.job(future).status == states.PENDING
    assert world.job(not_due).next_poll_at == past + timedelta(hours=1)
    assert processing.sweep() == []  # claimed work is leased, not handed out twice


def test_outage_while_running_is_waited_out(world: World) -> None:
    job_id = world.make_job()
    assert processing.submit_job(job_id) == "submitted"
    world.fake.down = "maintenance"
    assert processing.poll_job(job_id) == "failed"
    job = world.job(job_id)
    assert (job.status, job.failures) == (states.RUNNING, 1)
    assert job.status_message is not None
    assert job.status_message.startswith("Could not check the job on Michigan (Michigan job status: the server ")
    world.fake.down = None
    done = world.run_to_end(job_id)
    assert (done.status, done.failures, done.failing_since) == (states.COMPLETED, 0, None)


def test_a_cancel_during_submission_is_handed_to_the_retrying_task(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.fake.job_run_time_s = 30
    job_id = world.make_job()
    submit = processing._with_adapter

    async def submit_then_user_cancels(view: Any, work: Any) -> Any:
        found = await submit(view, work)
        with processing.runtime().sessions() as session:
            job = session.get(Job, uuid.UUID(job_id))
            assert job is not None
            processing.service.set_status_sync(session=session, job=job, new_status=states.CANCELLED, message="by user")
            session.commit()
        return found

    def unreachable(job_id: str) -> str:
        raise processing.TransientRemoteError("the server could not be reached")

    enqueued: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(processing, "_with_adapter", submit_then_user_cancels)
    monkeypatch.setattr(processing, "cancel_remote", unreachable)
    monkeypatch.setattr(processing, "enqueue_task", lambda task, args: enqueued.append((task, args)))
    assert processing.submit_job(job_id) == "submitted"
    assert enqueued == [("jobs.cancel_remote", [job_id])]
    assert world.job(job_id).status == states.CANCELLED


def test_results_are_collected_without_a_transaction_held_open(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = world.make_job(status=states.DOWNLOADING, remote_job_id="job-1")
    pool = processing.runtime().engine.pool
    checked_out: list[int] = []

    def collect(collected_id: str) -> str:
        checked_out.append(pool.checkedout())  # type: ignore[attr-defined]
        return "collected"

    monkeypatch.setattr(processing, "_collect_locked", collect)
    assert processing.poll_job(job_id) == "collected"
    assert checked_out == [1]  # the advisory lock's connection only, no session's
