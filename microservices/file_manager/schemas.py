"""Request and response bodies of the file manager."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VcfInfo(BaseModel):
    """What the VCF checks found."""

    file_format: str = Field(description="The `##fileformat` version, e.g. VCFv4.2")
    compression: Literal["bgzf", "gzip", "none"]
    samples: list[str] = Field(description="The first 100 sample ids, in file order")
    sample_count: int
    chromosomes: list[str] = Field(description="Chromosomes in order of first appearance")
    variant_count: int
    chr_prefix: bool | None = Field(description="Chromosomes named `chr…`; null when mixed or no records")
    phased: bool | None = Field(description="Every diploid genotype phased (`|`); null without genotypes")
    build_hint: Literal["hg19", "hg38"] | None
    build_hint_source: str | None = Field(description="`contig lengths` or `##reference`")
    warnings: list[str]


class FileRead(BaseModel):
    """A stored file."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    size_bytes: int
    sha256: str
    md5: str
    content_type: str
    purpose: Literal["input", "result"]
    status: Literal["available", "expired"]
    vcf: VcfInfo | None
    created_at: datetime
    expires_at: datetime | None
    expired_at: datetime | None
    owner_id: int
    job_id: str | None


class SignedUrlCreate(BaseModel):
    """Options of a signed download link."""

    expires_in_s: int | None = Field(default=None, ge=1, description="Lifetime; the configured default if unset")


class SignedUrlRead(BaseModel):
    """A download link that needs no bearer token until it expires."""

    url: str
    expires_at: datetime


class CleanupRead(BaseModel):
    """What one retention run did."""

    expired: int
    file_ids: list[uuid.UUID]
    leftovers_removed: int
