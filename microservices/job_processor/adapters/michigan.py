"""Michigan Imputation Server / Cloudgene (protocols/michigan.md): `X-Auth-Token`, the app id read from
`/api/v2/server`, a streamed multipart submit, numeric states, checkboxes sent only to switch them on, results
downloaded once each from `/share/results/{hash}/{name}` (every GET counts against the download limit).
"""

from __future__ import annotations

import html
import re
from typing import Any, ClassVar

from microservices.job_processor import states
from microservices.job_processor.adapters.base import (
    Adapter,
    FilePart,
    PermanentRemoteError,
    RemoteOutput,
    RemoteStatus,
    Submission,
    TransientRemoteError,
    boundary,
    job_tag,
    multipart_body,
)

# Cloudgene apps that impute, newest first (MIS 2, MIS 1.x / TOPMed, legacy).
IMPUTATION_APPS = ("imputationserver2", "imputationserver", "minimac4")
WAITING, RUNNING, EXPORTING, SUCCESS, FAILED, CANCELED, RETIRED, SUCCESS_NOTIFIED, FAILED_NOTIFIED, DELETED = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
)  # fmt: skip
DEAD = -1
ERROR_TYPE = 1
_TAGS = re.compile(r"<[^>]+>")


def _text(message: str) -> str:
    return html.unescape(_TAGS.sub("", message.replace("<br>", "\n"))).strip()


class MichiganAdapter(Adapter):
    """A Michigan-compatible server (Michigan, TOPMed, H3Africa/AfriGen-D)."""

    api_type: ClassVar[str] = "michigan"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._app_id: str | None = None

    def auth_headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.credential.token} if self.credential else {}

    def download_headers(self) -> dict[str, str]:
        # Result links are anonymous (the hash is the secret), as imputationbot fetches them: no token to leak.
        return {}

    async def app_id(self) -> str:
        """The id of the imputation app this token may use, from `GET /api/v2/server`."""
        if self._app_id is not None:
            return self._app_id
        if self.credential is None:
            raise PermanentRemoteError(
                "No API token for this Michigan server: store yours under your profile's service credentials."
            )
        body = (await self.request("GET", "/api/v2/server", what="Michigan server info")).json()
        if body.get("loggedIn") is False:
            raise PermanentRemoteError(
                "the Michigan server did not accept the API token (it answers as to an anonymous visitor); check the "
                "token stored for this service"
            )
        apps = [str(a.get("id", "")) for a in body.get("apps") or []]
        for wanted in IMPUTATION_APPS:
            for app in apps:
                if app.split("@", 1)[0] == wanted:
                    self._app_id = app
                    return app
        raise PermanentRemoteError(f"The Michigan server offers no imputation app to this account (apps: {apps}).")

    async def find(self, job_id: str) -> str | None:
        body = (await self.request("GET", "/api/v2/jobs", what="Michigan job list")).json()
        tag = job_tag(job_id)
        for job in body.get("data") or []:
            if tag in html.unescape(str(job.get("name") or "")):
                return str(job["id"])
        return None

    def _fields(self, submission: Submission, app: str) -> list[tuple[str, str]]:
        legacy = app.split("@", 1)[0] != "imputationserver2"
        fields = [
            ("job-name", f"{submission.name} [{job_tag(submission.job_id)}]"),
            ("refpanel", submission.panel_remote_id),
            ("build", submission.build),
            ("phasing", "eagle" if submission.phasing else "no_phasing"),
            ("mode", ("qconly" if legacy else "qc_only") if submission.mode == "qc_only" else "imputation"),
        ]
        if submission.population:
            fields.append(("population", submission.population))
        if submission.r2_filter is not None:
            fields.append(("r2Filter", f"{submission.r2_filter:g}"))
        if submission.result_password:
            fields.append(("password", submission.result_password))
        # Checkboxes (aesEncryption, meta) are sent only to switch them on: present means true, whatever its value.
        for checkbox in ("aesEncryption", "meta"):
            if submission.panel_parameters.get(checkbox) is True:
                fields.append((checkbox, "yes" if legacy else "true"))
        return fields

    async def submit(self, submission: Submission) -> str:
        app = await self.app_id()
        marker = boundary()
        parts = [FilePart("files", f.filename, file_id=f.file_id) for f in submission.inputs]
        try:
            response = await self.request(
                "POST",
                f"/api/v2/jobs/submit/{app}",
                what="Michigan job submission",
                content=multipart_body(self._fields(submission, app), parts, self.files, marker),
                headers={"Content-Type": f"multipart/form-data; boundary={marker}"},
                timeout=self.transfer_timeout_s,
            )
        except PermanentRemoteError as exc:
            if "jobs per user can be executed simultaneously" in str(exc):
                raise TransientRemoteError(str(exc)) from exc  # wait for a running job to end
            raise
        body = response.json()
        if not body.get("success", True) or not body.get("id"):
            raise PermanentRemoteError(f"The Michigan server refused the job: {body.get('message')}")
        return str(body["id"])

    async def job(self, remote_id: str) -> dict[str, Any]:
        """The full Job object."""
        return dict((await self.request("GET", f"/api/v2/jobs/{remote_id}", what="Michigan job")).json())

    async def status(self, remote_id: str) -> RemoteStatus:
        job = (await self.request("GET", f"/api/v2/jobs/{remote_id}/status", what="Michigan job status")).json()
        if not job.get("steps") and job.get("state") in (FAILED, SUCCESS):
            job = await self.job(remote_id)  # Cloudgene 2 answers a light job without steps
        state = int(job.get("state", 0))
        steps = job.get("steps") or []
        logs = self.logs_of(steps)
        last = self._last_message(steps)
        if state in (WAITING, RUNNING, EXPORTING):
            if state == WAITING:
                position = job.get("positionInQueue", -1)
                message = "Waiting in the Michigan server's queue" + (
                    f" (position {position})." if isinstance(position, int) and position >= 0 else "."
                )
            else:
                message = ("Exporting results" if state == EXPORTING else "Running") + (f": {last}" if last else ".")
            return RemoteStatus(states.RUNNING, str(state), message, {1: 5, 2: 50, 3: 90}[state], logs)
        if state in (SUCCESS, SUCCESS_NOTIFIED):
            return RemoteStatus(states.DOWNLOADING, str(state), "The Michigan server finished the job.", 95, logs)
        if state == CANCELED:
            return RemoteStatus(
                states.CANCELLED, str(state), "The job was cancelled on the Michigan server.", None, logs
            )
        reasons = {
            FAILED: "The Michigan server reports the job failed",
            FAILED_NOTIFIED: "The Michigan server reports the job failed or was cancelled",
            RETIRED: "The Michigan server has retired the job and deleted its results",
            DELETED: "The job was deleted on the Michigan server",
            DEAD: "The Michigan server restarted while the job was waiting; resubmit it",
        }
        error = self._error_message(steps)
        message = reasons.get(state, f"The Michigan server reports unknown state {state}")
        return RemoteStatus(states.FAILED, str(state), message + (f": {error}" if error else "."), None, logs)

    @staticmethod
    def logs_of(steps: list[dict[str, Any]]) -> str:
        """The step messages as text, one block per step."""
        lines = []
        for step in steps:
            lines.append(f"== {step.get('name')}")
            lines.extend(_text(str(m.get("message", ""))) for m in step.get("logMessages") or [])
        return "\n".join(lines)

    @staticmethod
    def _last_message(steps: list[dict[str, Any]]) -> str:
        for step in reversed(steps):
            for message in reversed(step.get("logMessages") or []):
                text = _text(str(message.get("message", ""))).splitlines()
                if text:
                    return text[0][:200]
        return ""

    @staticmethod
    def _error_message(steps: list[dict[str, Any]]) -> str:
        for step in steps:
            for message in step.get("logMessages") or []:
                if message.get("type") == ERROR_TYPE:
                    return _text(str(message.get("message", "")))[:500]
        return ""

    async def outputs(self, remote_id: str) -> list[RemoteOutput]:
        job = await self.job(remote_id)
        found = []
        for param in job.get("outputParams") or []:
            for item in param.get("files") or []:
                name, file_hash = str(item["name"]), str(item["hash"])
                found.append(RemoteOutput(name=name, url=f"{self.base_url}/share/results/{file_hash}/{name}"))
        return found

    async def cancel(self, remote_id: str) -> None:
        try:
            await self.request("GET", f"/api/v2/jobs/{remote_id}/cancel", what="Michigan job cancel")
        except PermanentRemoteError as exc:
            if "HTTP 404" not in str(exc):
                raise
