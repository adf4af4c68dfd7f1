"""A fake Michigan Imputation Server (Cloudgene 3 running imputationserver2), for tests only.

It follows the contract of `protocols/michigan.md` (the Cloudgene 3 code): the same paths, the `X-Auth-Token`
header (401 with an empty body when it is missing or wrong), the same JSON shapes and messages, numeric job states,
the checkbox rule (a checkbox field that is present is stored as "true" whatever its value), late validation (a
wrong reference panel, population or build, or no files, is accepted with 200 and fails later with state 5), the
per-user limit of concurrent jobs, outputs with human-readable sizes, and anonymous downloads by hash that count
down to 0 and then answer 400.

Run it as a process::

    python -m tests.fakes.michigan --port 8123 --token T [--username alice] [--job-run-time 2] [--fail-late]
        [--download-limit 10] [--max-concurrent-jobs 2]

or in process: ``app = make_app(token="T", job_run_time_s=0.5)`` and ``httpx.ASGITransport(app=app)``; the
options live on ``app.state.fake`` (a `FakeMichigan`) and can be changed at any time.

A job moves with the clock: waiting (1) for the first 20 % of its run time, running (2) until 80 %, exporting (3)
until 100 %, then success (4) or failed (5). Test controls, over HTTP under ``/_fake`` (no token needed, and they
work while the server is "down"):

- ``PATCH /_fake/config`` with JSON ``{"job_run_time_s", "fail_late", "download_limit", "max_concurrent_jobs",
  "panels": [{"id", "version", "name", "populations": {"eur": "EUR"}}]}`` (any subset);
- ``POST /_fake/down`` (every other path answers 503 with the maintenance message), ``POST /_fake/down?mode=hang``
  (every other path waits ``hang_s`` seconds, default 60, before answering 503: for timeout tests),
  ``POST /_fake/up``;
- ``GET /_fake/jobs/{id}``: what the server stored for a job: ``params`` (after the checkbox rule), ``inputs``
  (file name, size, SHA-256, chromosome), ``status_polls`` (GETs of the job and its status), ``failure``;
- ``POST /_fake/jobs/{id}/state`` with ``{"state": N}`` pins a job to a state (e.g. 7 retired, -1 dead);
- ``GET /_fake/requests``: the count of requests per method and path.

Results are small real zip files (``chr_<N>.zip`` for each chromosome found in the uploaded VCFs, chromosome 20
when none can be read) holding ``chr<N>.dose.vcf.gz`` and ``chr<N>.info.gz``; they are not encrypted.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import secrets
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

WAITING, RUNNING, EXPORTING, SUCCESS, FAILED, CANCELED, RETIRED, DEAD, DELETED = 1, 2, 3, 4, 5, 6, 7, -1, 10
LIVE_STATES = (WAITING, RUNNING, EXPORTING)
CHECKBOXES = ("aesEncryption", "meta")
FORM_FIELDS = ("files", "refpanel", "build", "r2Filter", "phasing", "population", "mode", "password", *CHECKBOXES)
PAGE_SIZE = 15
MAINTENANCE = "This functionality is currently under maintenance."
STEP_NAMES = ("Input Validation", "Quality Control", "Phasing and Imputation", "Summary")


@dataclass
class Panel:
    """A reference panel, an app of its own on a Cloudgene server (`apps@<id>@<version>`)."""

    id: str
    version: str
    name: str
    populations: dict[str, str]

    @property
    def key(self) -> str:
        return f"apps@{self.id}@{self.version}"


DEFAULT_PANELS = (
    Panel(
        "1000g-phase-3-v5",
        "2.0.0",
        "1000 Genomes Phase 3 (Version 5)",
        {"afr": "AFR", "amr": "AMR", "eas": "EAS", "eur": "EUR", "sas": "SAS", "all": "ALL"},
    ),
    Panel("hapmap-2", "2.0.0", "HapMap 2", {"eur": "EUR"}),
    Panel("hrc-r1.1", "2.0.0", "HRC r1.1 2016", {"eur": "EUR", "mixed": "Mixed"}),
    Panel("topmed-r3", "1.0.0", "TOPMed r3 (GRCh38/hg38)", {"all": "All"}),
)


@dataclass
class OutputFile:
    name: str
    content: bytes
    hash: str
    count: int
    param_id: int

    def as_json(self, job_id: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "hash": self.hash,
            "size": display_size(len(self.content)),
            "path": f"{job_id}/output/{self.name}",
            "count": self.count,
            "parameterId": self.param_id,
            "user": None,
        }


@dataclass
class Job:
    id: str
    name: str
    app_id: str
    username: str
    user_agent: str
    submitted_at: float
    run_time_s: float
    params: dict[str, str]
    inputs: list[dict[str, Any]]
    failure: tuple[str, str] | None  # (step name, message)
    pinned_state: int | None = None
    ended_at: float | None = None
    output_hash: str = field(default_factory=lambda: secrets.token_hex(32))
    outputs: list[OutputFile] = field(default_factory=list)
    status_polls: int = 0


def display_size(size: int) -> str:
    """Apache commons-io `byteCountToDisplaySize`: whole units, rounded down."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size // factor > 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else int(seconds * 1000)


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "message": message}, status_code=status_code)


def _chromosome_of(content: bytes) -> str | None:
    """The first data line's chromosome of a (b)gzipped VCF, without its `chr` prefix."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(content)) as handle:
            for raw in handle:
                if not raw.startswith(b"#") and raw.strip():
                    chromosome = raw.split(b"\t", 1)[0].decode()
                    return chromosome.removeprefix("chr")
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    return None


def _result_zip(chromosome: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\n"
        dose = f"{header}{chromosome}\t1\t.\tA\tG\t.\tPASS\t.\tDS\n"
        archive.writestr(f"chr{chromosome}.dose.vcf.gz", gzip.compress(dose.encode(), mtime=0))
        archive.writestr(f"chr{chromosome}.info.gz", gzip.compress(b"SNP\tREF(0)\tALT(1)\tRsq\n", mtime=0))
    return buffer.getvalue()


class FakeMichigan:
    """The fake server's state and options; `make_app` serves it."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        username: str = "testuser",
        users: dict[str, str] | None = None,
        job_run_time_s: float = 2.0,
        fail_late: bool = False,
        download_limit: int = 10,
        max_concurrent_jobs: int = 2,
        panels: list[Panel] | None = None,
        app_id: str = "imputationserver2",
        app_version: str = "2.0.12",
        server_name: str = "Michigan Imputation Server (fake)",
        clock: Callable[[], float] = time.time,
    ) -> None:
        # token -> username; `users` adds more accounts, e.g. for "another user's job" tests.
        self.users = {token: username, **(users or {})}
        self.job_run_time_s = job_run_time_s
        self.fail_late = fail_late
        self.download_limit = download_limit
        self.max_concurrent_jobs = max_concurrent_jobs
        self.panels = list(panels if panels is not None else DEFAULT_PANELS)
        self.app_id = app_id
        self.app_version = app_version
        self.server_name = server_name
        self.clock = clock
        self.down: str | None = None  # None, "maintenance" or "hang"
        self.hang_s = 60.0
        self.jobs: dict[str, Job] = {}
        self.requests: Counter[str] = Counter()
        self._last_id = ""

    # -- state ---------------------------------------------------------------------------------------------------

    def state_of(self, job: Job) -> int:
        """The job's state now, moving with the clock unless pinned."""
        if job.pinned_state is not None:
            return job.pinned_state
        elapsed = self.clock() - job.submitted_at
        if elapsed < job.run_time_s * 0.2:
            return WAITING
        if elapsed < job.run_time_s * 0.8:
            return RUNNING
        if elapsed < job.run_time_s:
            return EXPORTING
        if job.failure is not None:
            return FAILED
        if not job.outputs:
            self._make_outputs(job)
        return SUCCESS

    def _make_outputs(self, job: Job) -> None:
        files: dict[str, bytes] = {
            "qc_report.txt": f"Samples: 0\nReference panel: {job.params.get('refpanel', '')}\n".encode(),
            "quality-control.html": b"<html><body><h1>Quality Control</h1></body></html>",
            "statistics/snps-excluded.txt": b"#Position\tFilterType\tInfo\n",
        }
        if job.params.get("mode", "imputation") == "imputation":
            chromosomes = sorted({i["chromosome"] or "20" for i in job.inputs}, key=lambda c: (len(c), c))
            for chromosome in chromosomes:
                files[f"chr_{chromosome}.zip"] = _result_zip(chromosome)
        for name, content in files.items():
            digest = hashlib.sha256(f"{name}{len(content)}{secrets.token_hex(8)}".encode()).hexdigest()
            job.outputs.append(OutputFile(name, content, digest, self.download_limit, 0))

    def _new_job_id(self) -> str:
        now = datetime.fromtimestamp(self.clock(), UTC)
        job_id = f"job-{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"
        # Two submissions in the same millisecond must not share an id.
        while job_id <= self._last_id and job_id[:-4] == self._last_id[:-4]:
            job_id = f"{job_id[:-3]}{int(job_id[-3:]) + 1:03d}"
        self._last_id = job_id
        return job_id

    def panel_for(self, value: str) -> Panel | None:
        """The panel a `refpanel` value names: `apps@<id>@<ver>`, `apps@<id>` or `<id>`."""
        panel_id = value.removeprefix("apps@").split("@", 1)[0]
        return next((p for p in self.panels if p.id == panel_id), None)

    def _late_failure(self, params: dict[str, str], inputs: list[dict[str, Any]]) -> tuple[str, str] | None:
        if not inputs:
            return "Input Validation", "The provided files are not VCF files (no files were uploaded)."
        panel = self.panel_for(params.get("refpanel", ""))
        if panel is None:
            return "Input Validation", f"Reference panel '{params.get('refpanel', '')}' not found."
        if params.get("build", "hg19") not in ("hg19", "hg38"):
            return "Input Validation", f"Unsupported build '{params['build']}'."
        population = params.get("population", "off")
        if population not in ("off", *panel.populations):
            available = ", ".join(panel.populations)
            return (
                "Input Validation",
                f"Population '{population}' is not supported by reference panel '{panel.id}'.<br>"
                f"Available populations: {available}",
            )
        if self.fail_late:
            return "Quality Control", "No chunks passed the QC step. Imputation cannot be started!"
        return None

    # -- JSON ----------------------------------------------------------------------------------------------------

    def _steps(self, job: Job, state: int) -> list[dict[str, Any]]:
        started = job.submitted_at + job.run_time_s * 0.2
        finished = state not in LIVE_STATES
        stage = {WAITING: 0, RUNNING: 2, EXPORTING: 3}.get(state, 4)
        steps: list[dict[str, Any]] = []
        for index, name in enumerate(STEP_NAMES):
            if state == WAITING or (state in (CANCELED, DEAD) and index > 0):
                break
            failed_here = job.failure is not None and state == FAILED and job.failure[0] == name
            if failed_here:
                message, kind = job.failure[1] if job.failure else "", 1
            elif index < stage or (finished and state != FAILED):
                message, kind = self._step_message(job, name), 0
            else:
                message, kind = f"{name}...", 3
            steps.append(
                {
                    "id": index + 1,
                    "name": name,
                    "empty": False,
                    "logMessages": [
                        {"message": message, "type": kind, "time": _ms(started), "success": kind != 1},
                    ],
                }
            )
            if failed_here or kind == 3:
                break
        return steps

    def _step_message(self, job: Job, name: str) -> str:
        if name == "Input Validation":
            chromosomes = ",".join(sorted({str(i["chromosome"]) for i in job.inputs}))
            return (
                f"{len(job.inputs)} valid VCF file(s) found.<br><br>Samples: 0<br>Chromosomes: {chromosomes}<br>"
                f"Build: {job.params.get('build', 'hg19')}<br>Reference Panel: {job.params.get('refpanel', '')}<br>"
                f"Population: {job.params.get('population', 'off')}<br>Phasing: {job.params.get('phasing', 'eagle')}"
                f"<br>Mode: {job.params.get('mode', 'imputation')}"
            )
        return {"Quality Control": "QC done.", "Phasing and Imputation": "Imputation done.", "Summary": "Done."}[name]

    def job_json(self, job: Job) -> dict[str, Any]:
        """The Cloudgene 3 JobResponse: every key always present."""
        state = self.state_of(job)
        started = job.submitted_at + job.run_time_s * 0.2 if state != WAITING else None
        if job.ended_at is not None:
            ended: float | None = job.ended_at
        elif state not in LIVE_STATES:
            ended = job.submitted_at + job.run_time_s
        else:
            ended = None
        output_params = []
        if state in (SUCCESS, 8) and job.outputs:
            output_params.append(
                {
                    "id": 0,
                    "name": "output",
                    "description": "Downloads",
                    "hash": job.output_hash,
                    "download": True,
                    "jobId": job.id,
                    "value": f"{job.id}/output",
                    "tree": [],
                    "files": [f.as_json(job.id) for f in job.outputs],
                }
            )
        return {
            "id": job.id,
            "name": job.name,
            "application": f"Genotype Imputation {self.app_version}",
            "applicationId": job.app_id,
            "state": state,
            "username": job.username,
            "userAgent": job.user_agent,
            "workspaceSize": None,
            "positionInQueue": 0 if state == WAITING else -1,
            "logs": "",
            "submittedOn": _ms(job.submitted_at),
            "startTime": _ms(started),
            "endTime": _ms(ended),
            "currentTime": _ms(self.clock()),
            "deletedOn": -1,
            "steps": self._steps(job, state),
            "outputParams": output_params,
        }

    def app_json(self) -> dict[str, Any]:
        """The form schema of the imputation app, with the panels and their populations."""

        def param(pid: str, kind: str, value: str, values: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": pid,
                "description": pid,
                "type": kind,
                "value": value,
                "visible": True,
                "required": pid in ("files", "refpanel"),
                "adminOnly": False,
                "details": None,
                "values": values,
                **extra,
            }

        def options(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
            return [{"key": k, "value": v} for k, v in pairs]

        first = self.panels[0].key if self.panels else ""
        return {
            "id": self.app_id,
            "name": "Genotype Imputation",
            "version": self.app_version,
            "description": "Genotype imputation with Minimac4 (fake).",
            "website": "",
            "submitButton": "Submit Job",
            "params": [
                param("files", "local_folder", "", []),
                param("refpanel", "app_list", first, [{"key": p.key, "value": p.name} for p in self.panels]),
                param("build", "list", "hg19", options(("hg19", "GRCh37/hg19"), ("hg38", "GRCh38/hg38"))),
                param("r2Filter", "list", "0", options(*((v, v) for v in ("0", "0.001", "0.1", "0.2", "0.3")))),
                param(
                    "phasing",
                    "list",
                    "eagle",
                    options(("eagle", "Eagle v2.4"), ("beagle", "Beagle 5.4"), ("no_phasing", "No phasing")),
                ),
                param(
                    "population",
                    "binded_list",
                    "",
                    [{"key": p.key, "value": p.name, "values": options(*p.populations.items())} for p in self.panels],
                    bind="refpanel",
                ),
                param(
                    "mode",
                    "list",
                    "imputation",
                    options(("qc_only", "Quality Control Only"), ("imputation", "QC & Imputation")),
                ),
                param("aesEncryption", "checkbox", "false", options(("true", "yes"), ("false", "no"))),
                param("meta", "checkbox", "false", options(("true", "yes"), ("false", "no"))),
            ],
            "s3Workspace": False,
            "footer": "",
        }

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply a `PATCH /_fake/config` body."""
        for name in ("job_run_time_s", "fail_late", "download_limit", "max_concurrent_jobs", "hang_s"):
            if name in changes:
                setattr(self, name, type(getattr(self, name))(changes[name]))
        if "panels" in changes:
            self.panels = [Panel(p["id"], p["version"], p["name"], dict(p["populations"])) for p in changes["panels"]]


# -- endpoints -----------------------------------------------------------------------------------------------------


def _fake(request: Request) -> FakeMichigan:
    fake: FakeMichigan = request.app.state.fake
    return fake


def _user(request: Request) -> str | None:
    token = request.headers.get("x-auth-token")
    return _fake(request).users.get(token) if token else None


def _unauthorized() -> Response:
    # The 401 body is unconfirmed in the contract: empty, so that clients never rely on one.
    return Response(status_code=401)


def _owned_job(request: Request, username: str) -> Job | Response:
    fake = _fake(request)
    job_id = request.path_params["job_id"]
    job = fake.jobs.get(job_id)
    if job is None or fake.state_of(job) == DELETED:
        return _error(404, f"Job {job_id} not found.")
    if job.username != username:
        return _error(403, "Access denied.")
    return job


async def server_info(request: Request) -> Response:
    """GET /api/v2/server: anonymous; the apps and the user only with a valid token."""
    fake = _fake(request)
    username = _user(request)
    body: dict[str, Any] = {
        "name": fake.server_name,
        "background": "#ffffff",
        "foreground": "#000000",
        "footer": "",
        "emailRequired": True,
        "oauth": [],
        "navigation": [],
        "apps": [],
        "deprecatedApps": [],
        "experimentalApps": [],
        "loggedIn": username is not None,
        "maintenace": False,
    }
    if username is not None:
        body["user"] = {"username": username, "mail": f"{username}@example.org", "admin": False, "name": username}
        body["apps"] = [
            {"id": f"{fake.app_id}@{fake.app_version}", "name": "Genotype Imputation", "version": fake.app_version}
        ]
    return JSONResponse(body)


async def app_info(request: Request) -> Response:
    """GET /api/v2/server/apps/{appId}: the form schema."""
    fake = _fake(request)
    if _user(request) is None:
        return _unauthorized()
    app_id = request.path_params["app_id"]
    if app_id.split("@", 1)[0] != fake.app_id or ("@" in app_id and app_id.split("@", 1)[1] != fake.app_version):
        return _error(404, f"Application '{app_id}' not found.")
    return JSONResponse(fake.app_json())


async def verify_token(request: Request) -> Response:
    """POST /api/v2/tokens/verify: anonymous, always 200."""
    fake = _fake(request)
    form = await request.form()
    token = str(form.get("token", ""))
    username = fake.users.get(token)
    if username is None:
        return JSONResponse({"valid": False, "message": "Invalid API Token.", "username": None, "name": None,
                             "mail": None, "expire": None})  # fmt: skip
    return JSONResponse(
        {
            "valid": True,
            "message": f"API Token was created by {username} and is valid.",
            "username": username,
            "name": username,
            "mail": f"{username}@example.org",
            "expire": "2099-01-01T00:00:00Z",
        }
    )


async def profile(request: Request) -> Response:
    """GET /api/v2/users/{x}/profile: the caller's profile (the path segment is ignored)."""
    username = _user(request)
    if username is None:
        return _unauthorized()
    return JSONResponse(
        {
            "username": username,
            "fullName": username,
            "mail": f"{username}@example.org",
            "admin": False,
            "hasApiToken": True,
            "apiTokenValid": True,
            "apiTokenMessage": "",
        }
    )


async def submit(request: Request) -> Response:
    """POST /api/v2/jobs/submit/{appId}: multipart; list values are checked only later (state 5)."""
    fake = _fake(request)
    username = _user(request)
    if username is None:
        return _unauthorized()
    app_id = request.path_params["app_id"]
    if app_id.split("@", 1)[0] != fake.app_id:
        return _error(404, f"Application '{app_id}' not found.")
    form = await request.form(max_part_size=10 * 1024 * 1024)
    params: dict[str, str] = {}
    inputs: list[dict[str, Any]] = []
    job_name = ""
    for raw_name, value in form.multi_items():
        name = raw_name.removeprefix("input-")
        if name == "job-name":
            job_name = str(value)
            continue
        if name.endswith("-pattern"):
            continue
        if name not in FORM_FIELDS:
            return _error(400, f"Parameter '{raw_name}' not found.")
        if name == "files":
            if isinstance(value, UploadFile):
                content = await value.read()
                inputs.append(
                    {
                        "name": value.filename,
                        "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(),
                        "chromosome": _chromosome_of(content),
                    }
                )
            continue
        # The checkbox rule: present means on, whatever was sent.
        params[name] = "true" if name in CHECKBOXES else str(value)
    for checkbox in CHECKBOXES:
        params.setdefault(checkbox, "false")
    running = [j for j in fake.jobs.values() if j.username == username and fake.state_of(j) in LIVE_STATES]
    if len(running) >= fake.max_concurrent_jobs:
        return _error(400, f"Only {fake.max_concurrent_jobs} jobs per user can be executed simultaneously.")
    job_id = fake._new_job_id()
    fake.jobs[job_id] = Job(
        id=job_id,
        name=job_name.replace("<", "&lt;").replace(">", "&gt;") or job_id,
        app_id=app_id,
        username=username,
        user_agent=request.headers.get("user-agent", ""),
        submitted_at=fake.clock(),
        run_time_s=fake.job_run_time_s,
        params=params,
        inputs=inputs,
        failure=fake._late_failure(params, inputs),
    )
    return JSONResponse({"id": job_id, "message": "Your job was successfully added to the job queue.", "success": True})


async def list_jobs(request: Request) -> Response:
    """GET /api/v2/jobs[?page=N]: a page object; deleted jobs are hidden."""
    fake = _fake(request)
    username = _user(request)
    if username is None:
        return _unauthorized()
    jobs = [j for j in fake.jobs.values() if j.username == username and fake.state_of(j) != DELETED]
    jobs.sort(key=lambda j: j.id, reverse=True)
    count = len(jobs)
    page_param = request.query_params.get("page")
    if page_param is None:
        page, page_size, chosen = 1, count, jobs
    else:
        page, page_size = max(1, int(page_param)), PAGE_SIZE
        chosen = jobs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    pages_total = max(1, -(-count // page_size)) if page_size else 1
    return JSONResponse(
        {
            "count": count,
            "page": page,
            "pageSize": page_size,
            "prev": page - 1 if page > 1 else None,
            "next": page + 1 if page < pages_total else None,
            "pages": list(range(1, pages_total + 1)),
            "data": [fake.job_json(j) for j in chosen],
        }
    )


async def get_job(request: Request) -> Response:
    """GET /api/v2/jobs/{id} and /api/v2/jobs/{id}/status: the Job."""
    username = _user(request)
    if username is None:
        return _unauthorized()
    job = _owned_job(request, username)
    if isinstance(job, Response):
        return job
    job.status_polls += 1
    return JSONResponse(_fake(request).job_json(job))


async def cancel_job(request: Request) -> Response:
    """GET /api/v2/jobs/{id}/cancel (a GET): the Job, now in state 6 if it was live."""
    fake = _fake(request)
    username = _user(request)
    if username is None:
        return _unauthorized()
    job = _owned_job(request, username)
    if isinstance(job, Response):
        return job
    if fake.state_of(job) in LIVE_STATES:
        job.pinned_state, job.ended_at = CANCELED, fake.clock()
    return JSONResponse(fake.job_json(job))


async def restart_job(request: Request) -> Response:
    """GET /api/v2/jobs/{id}/restart: only a dead (-1) job goes back to the queue."""
    fake = _fake(request)
    username = _user(request)
    if username is None:
        return _unauthorized()
    job = _owned_job(request, username)
    if isinstance(job, Response):
        return job
    if fake.state_of(job) != DEAD:
        return _error(400, f"Job {job.id} is not pending.")
    job.pinned_state, job.ended_at, job.submitted_at = None, None, fake.clock()
    return JSONResponse({"success": True, "message": "Your job was successfully added to the job queue."})


async def delete_job(request: Request) -> Response:
    """DELETE /api/v2/jobs/{id}: needs the web access token, which an API token is not (403)."""
    username = _user(request)
    if username is None:
        return _unauthorized()
    job = _owned_job(request, username)
    if isinstance(job, Response):
        return job
    return _error(403, "Access denied.")


async def job_logs(request: Request) -> Response:
    """GET /logs/{id}: plain text."""
    fake = _fake(request)
    username = _user(request)
    if username is None:
        return _unauthorized()
    job = _owned_job(request, username)
    if isinstance(job, Response):
        return job
    return PlainTextResponse(f"job.txt:\n\nJob {job.id} state {fake.state_of(job)}\n\nstd.out:\n\n")


def _download(fake: FakeMichigan, job: Job | None, output: OutputFile | None) -> Response:
    if job is None or output is None:
        return _error(404, "download not found.")
    if output.count == 0:
        return _error(400, "number of max downloads exceeded.")
    if output.count > 0:
        output.count -= 1
    media_type = "application/zip" if output.name.endswith(".zip") else "application/octet-stream"
    return Response(output.content, media_type=media_type)


def _by_hash(fake: FakeMichigan, file_hash: str) -> tuple[Job | None, OutputFile | None]:
    for job in fake.jobs.values():
        for output in job.outputs:
            if output.hash == file_hash:
                return job, output
    return None, None


async def share_results(request: Request) -> Response:
    """GET /share/results/{hash}/{filename}: anonymous; each GET spends one download."""
    fake = _fake(request)
    job, output = _by_hash(fake, request.path_params["hash"])
    if output is not None and output.name != request.path_params["filename"]:
        job, output = None, None
    return _download(fake, job, output)


async def downloads(request: Request) -> Response:
    """GET /downloads/{jobId}/{hash}/{filename}: the same file, addressed by job id."""
    fake = _fake(request)
    job, output = _by_hash(fake, request.path_params["hash"])
    wanted = (request.path_params["job_id"], request.path_params["filename"])
    if job is None or output is None or (job.id, output.name) != wanted:
        job, output = None, None
    return _download(fake, job, output)


async def browse(request: Request) -> Response:
    """GET /browse/{paramHash}/{filename}: a file found by its output parameter's hash and its name."""
    fake = _fake(request)
    job = next((j for j in fake.jobs.values() if j.output_hash == request.path_params["param_hash"]), None)
    output = None
    if job is not None:
        output = next((o for o in job.outputs if o.name == request.path_params["filename"]), None)
    return _download(fake, job, output)


async def get_script(request: Request) -> Response:
    """GET /get/{paramHash}: a bash script of curl lines, one per file."""
    fake = _fake(request)
    job = next((j for j in fake.jobs.values() if j.output_hash == request.path_params["param_hash"]), None)
    if job is None or not job.outputs:
        return _error(404, "download not found.")
    base = str(request.base_url).rstrip("/")
    lines = [f"curl -L {base}/share/results/{o.hash}/{o.name} -o {o.name} --create-dirs" for o in job.outputs]
    return PlainTextResponse("\n".join(lines) + "\n")


# -- test controls -------------------------------------------------------------------------------------------------


async def control_config(request: Request) -> Response:
    fake = _fake(request)
    fake.configure(await request.json())
    return JSONResponse({"ok": True})


async def control_down(request: Request) -> Response:
    fake = _fake(request)
    fake.down = "hang" if request.query_params.get("mode") == "hang" else "maintenance"
    return JSONResponse({"down": fake.down})


async def control_up(request: Request) -> Response:
    _fake(request).down = None
    return JSONResponse({"down": None})


async def control_job(request: Request) -> Response:
    fake = _fake(request)
    job = fake.jobs.get(request.path_params["job_id"])
    if job is None:
        return _error(404, "no such job")
    return JSONResponse(
        {
            "id": job.id,
            "state": fake.state_of(job),
            "params": job.params,
            "inputs": job.inputs,
            "status_polls": job.status_polls,
            "failure": job.failure[1] if job.failure else None,
        }
    )


async def control_job_state(request: Request) -> Response:
    fake = _fake(request)
    job = fake.jobs.get(request.path_params["job_id"])
    if job is None:
        return _error(404, "no such job")
    state = int((await request.json())["state"])
    if state in (SUCCESS, 8) and not job.outputs:
        fake._make_outputs(job)
    job.pinned_state = state
    return JSONResponse({"id": job.id, "state": state})


async def control_requests(request: Request) -> Response:
    return JSONResponse(dict(_fake(request).requests))


class _Gate:
    """ASGI wrapper: counts requests and plays the outage switch for everything outside `/_fake`."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_fake"):
            await self.app(scope, receive, send)
            return
        fake: FakeMichigan = self.app.state.fake
        fake.requests[f"{scope['method']} {scope['path']}"] += 1
        if fake.down is not None:
            if fake.down == "hang":
                await asyncio.sleep(fake.hang_s)
            await _error(503, MAINTENANCE)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def make_app(**options: Any) -> Any:
    """The fake server as an ASGI app; `options` are `FakeMichigan`'s, reachable on `app.state.fake`."""
    routes = [
        Route("/api/v2/server", server_info),
        Route("/api/v2/server/apps/{app_id}", app_info),
        Route("/api/v2/tokens/verify", verify_token, methods=["POST"]),
        Route("/api/v2/users/{user}/profile", profile),
        Route("/api/v2/jobs/submit/{app_id}", submit, methods=["POST"]),
        Route("/api/v2/jobs", list_jobs),
        Route("/api/v2/jobs/{job_id}", get_job),
        Route("/api/v2/jobs/{job_id}", delete_job, methods=["DELETE"]),
        Route("/api/v2/jobs/{job_id}/status", get_job),
        Route("/api/v2/jobs/{job_id}/cancel", cancel_job),
        Route("/api/v2/jobs/{job_id}/restart", restart_job),
        Route("/logs/{job_id}", job_logs),
        Route("/share/results/{hash}/{filename:path}", share_results),
        Route("/downloads/{job_id}/{hash}/{filename:path}", downloads),
        Route("/get/{param_hash}", get_script),
        Route("/browse/{param_hash}/{filename:path}", browse),
        Route("/_fake/config", control_config, methods=["PATCH"]),
        Route("/_fake/down", control_down, methods=["POST"]),
        Route("/_fake/up", control_up, methods=["POST"]),
        Route("/_fake/jobs/{job_id}", control_job),
        Route("/_fake/jobs/{job_id}/state", control_job_state, methods=["POST"]),
        Route("/_fake/requests", control_requests),
    ]
    app = Starlette(routes=routes)
    app.state.fake = FakeMichigan(**options)
    return _Gate(app)


def main(argv: list[str] | None = None) -> None:
    """Serve the fake on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.michigan", description="A fake Michigan server.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", required=True)
    parser.add_argument("--username", default="testuser")
    parser.add_argument("--job-run-time", type=float, default=2.0, help="seconds from submission to the end state")
    parser.add_argument("--fail-late", action="store_true", help="every job fails in QC with state 5")
    parser.add_argument("--download-limit", type=int, default=10, help="downloads per file; -1 for unlimited")
    parser.add_argument("--max-concurrent-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    app = make_app(
        token=args.token,
        username=args.username,
        job_run_time_s=args.job_run_time,
        fail_late=args.fail_late,
        download_limit=args.download_limit,
        max_concurrent_jobs=args.max_concurrent_jobs,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
