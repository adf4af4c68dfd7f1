"""GA4GH WES 1.1 (protocols/ga4gh-wes.md), with the quirks of real servers (sapporo): the engine sent always,
outputs as the 1.1 dict or a list of `{file_name, file_url}`, 400 for malformed run ids, list filtering done here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

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
    multipart_body,
)

TAG_KEY = "platform_job_id"
MAX_LIST_PAGES = 20

# WES states onto ours; CANCELING stays live until the node says CANCELED.
STATE_MAP = {
    "UNKNOWN": states.RUNNING,
    "QUEUED": states.RUNNING,
    "INITIALIZING": states.RUNNING,
    "RUNNING": states.RUNNING,
    "PAUSED": states.RUNNING,
    "CANCELING": states.RUNNING,
    "COMPLETE": states.DOWNLOADING,
    "EXECUTOR_ERROR": states.FAILED,
    "SYSTEM_ERROR": states.FAILED,
    "PREEMPTED": states.FAILED,
    "CANCELED": states.CANCELLED,
    "DELETING": states.FAILED,
    "DELETED": states.FAILED,
}
STATE_MESSAGES = {
    "UNKNOWN": "The WES node does not know the run's state yet.",
    "QUEUED": "Queued on the WES node.",
    "INITIALIZING": "The WES node is preparing the run.",
    "RUNNING": "Running on the WES node.",
    "PAUSED": "Paused on the WES node.",
    "CANCELING": "The WES node is cancelling the run.",
    "COMPLETE": "The WES node finished the run.",
    "EXECUTOR_ERROR": "The workflow failed on the WES node",
    "SYSTEM_ERROR": "The WES node failed while running the workflow",
    "PREEMPTED": "The WES node preempted the run",
    "CANCELED": "The run was cancelled on the WES node.",
    "DELETING": "The run was deleted on the WES node",
    "DELETED": "The run was deleted on the WES node",
}
PROGRESS = {"QUEUED": 5, "INITIALIZING": 10, "RUNNING": 50, "COMPLETE": 90}
# Panel parameters that configure the submission rather than being passed to the workflow.
CONTROL_PARAMETERS = {
    "workflow_url",
    "workflow_type",
    "workflow_type_version",
    "workflow_engine",
    "workflow_engine_version",
    "workflow_engine_parameters",
    "input_transfer",
    "target_input",
}
FILE_PARAMETERS = {"reference_vcf", "genetic_map"}


class WesAdapter(Adapter):
    """A GA4GH WES node running the imputation workflow configured for it (the shipped CWL one by default)."""

    api_type: ClassVar[str] = "ga4gh_wes"

    def __init__(self, *, workflow_dir: Path, workflow_file: str, engine: str, type_version: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.workflow_dir = workflow_dir
        self.workflow_file = workflow_file
        self.engine = engine
        self.type_version = type_version

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.token}"} if self.credential else {}

    async def service_info(self) -> dict[str, Any]:
        """The node's service-info (engines and workflow versions it runs)."""
        return dict((await self.request("GET", "/service-info", what="WES service-info")).json())

    async def find(self, job_id: str) -> str | None:
        page_token: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params: dict[str, Any] = {"page_size": 100}
            if page_token:
                params["page_token"] = page_token
            body = (await self.request("GET", "/runs", params=params, what="WES run list")).json()
            runs = body.get("runs") or body.get("workflows") or []
            for run in runs:
                if (run.get("tags") or {}).get(TAG_KEY) == job_id:
                    return str(run["run_id"])
            page_token = body.get("next_page_token") or None
            if not page_token or not runs:
                return None
        return None

    def _workflow(self, submission: Submission) -> tuple[dict[str, str], list[FilePart]]:
        options = {**submission.service_options, **submission.panel_parameters}
        fields = {
            "workflow_type": str(options.get("workflow_type") or "CWL"),
            "workflow_type_version": str(options.get("workflow_type_version") or self.type_version),
            "workflow_engine": str(options.get("workflow_engine") or self.engine),
        }
        if options.get("workflow_engine_version"):
            fields["workflow_engine_version"] = str(options["workflow_engine_version"])
        engine_parameters = options.get("workflow_engine_parameters") or {}
        fields["workflow_engine_parameters"] = json.dumps(engine_parameters)
        if options.get("workflow_url"):
            fields["workflow_url"] = str(options["workflow_url"])
            return fields, []
        # The shipped workflow, attached: the node needs nothing installed but the engine and the tools.
        fields["workflow_url"] = self.workflow_file
        parts = [
            FilePart("workflow_attachment", path.name, content=path.read_bytes())
            for path in sorted(self.workflow_dir.glob("*.cwl"))
        ]
        return fields, parts

    async def submit(self, submission: Submission) -> str:
        if len(submission.inputs) != 1:
            raise PermanentRemoteError("The WES workflow imputes one target VCF per run.")
        target = submission.inputs[0]
        fields, parts = self._workflow(submission)
        options = {**submission.service_options, **submission.panel_parameters}
        params: dict[str, Any] = {}
        for key, value in submission.panel_parameters.items():
            if key in CONTROL_PARAMETERS or value is None:
                continue
            if key in FILE_PARAMETERS:
                text = str(value)
                params[key] = {"class": "File", ("location" if "://" in text else "path"): text}
            else:
                params[key] = value
        input_name = str(options.get("target_input") or "target_vcf")
        if options.get("input_transfer") == "signed_url":
            url = await self.files.signed_url(target.file_id)
            params[input_name] = {"class": "File", "location": url, "basename": target.filename}
        else:
            params[input_name] = {"class": "File", "location": target.filename}
            parts.append(FilePart("workflow_attachment", target.filename, file_id=target.file_id))
        tags = {TAG_KEY: submission.job_id, "platform": "federated-imputation", "job_name": submission.name[:100]}
        fields["workflow_params"] = json.dumps(params)
        fields["tags"] = json.dumps(tags)
        marker = boundary()
        response = await self.request(
            "POST",
            "/runs",
            what="WES run submission",
            content=multipart_body(list(fields.items()), parts, self.files, marker),
            headers={"Content-Type": f"multipart/form-data; boundary={marker}"},
            timeout=self.transfer_timeout_s,
        )
        run_id = response.json().get("run_id")
        if not run_id:
            raise PermanentRemoteError(f"The WES node accepted the run but gave no run_id: {response.text[:200]}")
        return str(run_id)

    async def status(self, remote_id: str) -> RemoteStatus:
        body = (await self.request("GET", f"/runs/{remote_id}/status", what="WES run status")).json()
        state = str(body.get("state") or "UNKNOWN")
        ours = STATE_MAP.get(state, states.RUNNING)
        message = STATE_MESSAGES.get(state, f"The WES node reports {state}.")
        logs = None
        if ours == states.FAILED:
            log = (await self.request("GET", f"/runs/{remote_id}", what="WES run log")).json()
            run_log = log.get("run_log") or {}
            stderr = str(run_log.get("stderr") or "").strip()
            logs = stderr or None
            tail = stderr.splitlines()[-1] if stderr else ""
            exit_code = run_log.get("exit_code")
            message = f"{message} (state {state}, exit code {exit_code})" + (f": {tail}" if tail else ".")
        return RemoteStatus(status=ours, remote_state=state, message=message, progress=PROGRESS.get(state), logs=logs)

    async def outputs(self, remote_id: str) -> list[RemoteOutput]:
        body = (await self.request("GET", f"/runs/{remote_id}", what="WES run log")).json()
        found = parse_outputs(body.get("outputs"))
        if not found:
            # Some servers list outputs only on their own endpoint.
            response = await self.request("GET", f"/runs/{remote_id}/outputs", what="WES run outputs")
            found = parse_outputs(response.json().get("outputs"))
        return found

    async def cancel(self, remote_id: str) -> None:
        try:
            await self.request("POST", f"/runs/{remote_id}/cancel", what="WES run cancel")
        except PermanentRemoteError as exc:
            if "HTTP 404" not in str(exc):
                raise


def parse_outputs(outputs: Any) -> list[RemoteOutput]:
    """Outputs in either form: a list of `{file_name, file_url}` (sapporo) or the 1.1 dict of CWL output objects."""
    found: list[RemoteOutput] = []
    if isinstance(outputs, list):
        for item in outputs:
            if isinstance(item, dict) and item.get("file_url"):
                found.append(RemoteOutput(name=str(item.get("file_name") or item["file_url"].rsplit("/", 1)[-1]),
                                          url=str(item["file_url"])))  # fmt: skip
        return found
    if isinstance(outputs, dict):
        for key, value in outputs.items():
            found.extend(_cwl_files(key, value))
    return found


def _cwl_files(key: str, value: Any) -> list[RemoteOutput]:
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return [RemoteOutput(name=value.rsplit("/", 1)[-1] or key, url=value)]
    if isinstance(value, list):
        return [found for item in value for found in _cwl_files(key, item)]
    if not isinstance(value, dict):
        return []
    found: list[RemoteOutput] = []
    location = str(value.get("location") or value.get("file_url") or "")
    if value.get("class") == "File" and location.startswith(("http://", "https://")):
        name = str(value.get("basename") or location.rsplit("/", 1)[-1])
        found.append(RemoteOutput(name=name, url=location, size_bytes=value.get("size")))
    for secondary in value.get("secondaryFiles") or []:
        found.extend(_cwl_files(key, secondary))
    return found


class DnastackAdapter(WesAdapter):
    """DNAstack's WES: the same protocol, authenticated with a token from DNAstack's wallet.

    The stored credential is either a bearer token, used as it is, or a JSON client registration
    `{"client_id", "client_secret", "token_url", "resource"?, "scope"?}` exchanged for an access token with the
    OAuth2 client-credentials grant (the wallet scopes tokens to the WES URL, the `resource`).
    """

    api_type: ClassVar[str] = "dnastack"

    def __init__(self, *, allow_http_token_url: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_http_token_url = allow_http_token_url
        self._access_token: str | None = None

    def _registration(self) -> dict[str, Any] | None:
        if self.credential is None or not self.credential.token.lstrip().startswith("{"):
            return None
        try:
            registration = json.loads(self.credential.token)
        except ValueError as exc:
            raise PermanentRemoteError("the DNAstack credential is not valid JSON") from exc
        missing = {"client_id", "client_secret", "token_url"} - set(registration)
        if missing:
            raise PermanentRemoteError(f"the DNAstack credential lacks {', '.join(sorted(missing))}")
        # The credential is the researcher's text and the worker posts to its token_url: only to a TLS endpoint.
        schemes = ("https", "http") if self.allow_http_token_url else ("https",)
        if urlsplit(str(registration["token_url"])).scheme not in schemes:
            raise PermanentRemoteError("the DNAstack credential's token_url must be an https URL")
        return dict(registration)

    async def _token(self) -> str | None:
        registration = self._registration()
        if registration is None:
            return self.credential.token if self.credential else None
        if self._access_token is None:
            form = {
                "grant_type": "client_credentials",
                "client_id": registration["client_id"],
                "client_secret": registration["client_secret"],
                "resource": registration.get("resource") or f"{self.base_url}/",
            }
            if registration.get("scope"):
                form["scope"] = registration["scope"]
            self._access_token = await self._exchange(str(registration["token_url"]), form)
        return self._access_token

    async def _exchange(self, token_url: str, form: dict[str, Any]) -> str:
        # The token endpoint's replies never reach job messages: the URL is the researcher's to choose, so its body
        # could be anything the worker can reach. Only the HTTP status is told.
        try:
            response = await self.http.post(token_url, data=form, timeout=self.timeout_s)
        except httpx.TimeoutException as exc:
            raise TransientRemoteError("DNAstack token: the token endpoint did not answer in time") from exc
        except httpx.TransportError as exc:
            raise TransientRemoteError(
                f"DNAstack token: the token endpoint could not be reached ({type(exc).__name__})"
            ) from exc
        code = response.status_code
        if code >= 500 or code in (408, 429):
            raise TransientRemoteError(f"DNAstack token: the token endpoint answered HTTP {code}")
        if code != 200:
            raise PermanentRemoteError(
                f"DNAstack token: the token endpoint refused the client registration (HTTP {code}); check the "
                "credential stored for this service"
            )
        try:
            return str(response.json()["access_token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentRemoteError(
                "DNAstack token: the token endpoint's answer (HTTP 200) held no access_token"
            ) from exc

    def auth_headers(self) -> dict[str, str]:
        if self._access_token:
            return {"Authorization": f"Bearer {self._access_token}"}
        return {} if self._registration() is not None else super().auth_headers()

    async def request(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        if self._registration() is not None and self._access_token is None:
            await self._token()
        return await super().request(method, path, what=what, **kwargs)
