"""The multipart forms of the system we replace: `POST /jobs` and `POST /jobs/multi-service` with the VCF in
`input_file` and the parameters as form fields. The file goes to the file manager first, then the same path as
the JSON form; a refused job takes its upload away again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from microservices.common.errors import BadRequest

FALSE_WORDS = {"", "0", "false", "no", "off", "no_phasing", "none"}
MAX_FIELD_BYTES = 64 * 1024


@dataclass
class LegacyForm:
    fields: dict[str, Any]
    upload: UploadFile | None


async def read_form(request: Request) -> LegacyForm:
    """The form's fields (as JobCreate-shaped values) and its uploaded file, spooled to disk beyond 1 MB."""
    form = await request.form(max_files=1, max_fields=50, max_part_size=MAX_FIELD_BYTES)
    upload: UploadFile | None = None
    fields: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key not in ("input_file", "file"):
                raise BadRequest(f"Send the VCF in the `input_file` field, not `{key}`.", code="unexpected_file")
            upload = value
            continue
        lists.setdefault(key, []).append(value)
    for key, values in lists.items():
        value = values[-1]
        if key == "phasing":
            fields[key] = value.strip().lower() not in FALSE_WORDS
        elif key in ("service_ids", "reference_panel_ids", "input_file_ids"):
            fields[key] = [part.strip() for v in values for part in v.split(",") if part.strip()]
        elif key == "targets":
            try:
                fields[key] = json.loads(value)
            except ValueError as exc:
                raise BadRequest("`targets` must be a JSON list of {service_id, reference_panel_id}.") from exc
        elif value.strip() == "" and key in ("population", "r2_filter", "description", "run_at"):
            continue
        else:
            fields[key] = value
    if "service_ids" in fields and "targets" not in fields:
        services, panels = fields.pop("service_ids"), fields.pop("reference_panel_ids", [])
        if len(services) != len(panels):
            raise BadRequest("Give one reference_panel_ids entry for each service_ids entry, in the same order.")
        fields["targets"] = [{"service_id": s, "reference_panel_id": p} for s, p in zip(services, panels, strict=True)]
    return LegacyForm(fields=fields, upload=upload)
