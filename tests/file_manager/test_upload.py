"""Uploads: streamed, checksummed, checked as VCF, limited, under quota, recorded with their event."""

import gzip
import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from microservices.common.events import outbox_table
from microservices.file_manager.models import Base, StoredFile
from tests.file_manager.conftest import HG38, SMALL, TARGET, TINY

OUTBOX = outbox_table(Base.metadata)


async def rows(fm) -> list[StoredFile]:
    return list((await fm.session.scalars(select(StoredFile))).all())


async def test_upload_records_checksums_vcf_metadata_and_stores_the_bytes_once(fm):
    data = HG38.read_bytes()
    response = await fm.upload(HG38, headers=fm.user(1))
    assert response.status_code == 201
    body = response.json()
    assert body["filename"] == "chr22.hg38.7samples.phased.vcf.gz"
    assert body["size_bytes"] == len(data) == 62449
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["md5"] == hashlib.md5(data).hexdigest()
    assert body["content_type"] == "application/gzip"
    assert (body["purpose"], body["status"], body["owner_id"], body["job_id"]) == ("input", "available", 1, None)
    assert body["expires_at"] is None
    assert body["vcf"] == {
        "file_format": "VCFv4.2",
        "compression": "bgzf",
        "samples": ["NA21102", "NA21103", "NA21104", "NA21105", "NA21106", "NA21107", "NA21108"],
        "sample_count": 7,
        "chromosomes": ["chr22"],
        "variant_count": 2527,
        "chr_prefix": True,
        "phased": True,
        "build_hint": "hg38",
        "build_hint_source": "contig lengths",
        "warnings": [],
    }
    # The bytes sit at a path made from the id, never from the client's name.
    file_id = uuid.UUID(body["id"])
    assert fm.stored_files() == [fm.settings.storage_dir.resolve() / file_id.hex[:2] / file_id.hex]
    assert fm.stored_files()[0].read_bytes() == data
    (row,) = await rows(fm)
    assert (row.id, row.uploaded_by, row.storage_key) == (file_id, "1", f"{file_id.hex[:2]}/{file_id.hex}")


@pytest.mark.parametrize(
    ("path", "samples", "variants", "phased"),
    [(TINY, 51, 100, True), (SMALL, 51, 1000, True), (TARGET, 50, 193, False)],
)
async def test_each_test_vcf_gets_its_exact_metadata(fm, path, samples, variants, phased):
    response = await fm.upload(path, headers=fm.user(1))
    assert response.status_code == 201
    vcf = response.json()["vcf"]
    assert (vcf["sample_count"], vcf["variant_count"], vcf["phased"]) == (samples, variants, phased)
    assert (vcf["chromosomes"], vcf["chr_prefix"], vcf["build_hint"]) == (["20"], False, None)


async def test_upload_publishes_file_upload_completed_in_the_same_transaction(fm):
    response = await fm.upload(TINY, headers=fm.user(7))
    body = response.json()
    events = (await fm.session.execute(select(OUTBOX).where(OUTBOX.c.topic == "file.upload.completed"))).all()
    assert [(e.producer, e.payload) for e in events] == [
        (
            "file_manager",
            {
                "file_id": body["id"],
                "user_id": 7,
                "filename": "chr20.tiny.100snps.vcf.gz",
                "size_bytes": 3499,
                "sha256": hashlib.sha256(TINY.read_bytes()).hexdigest(),
            },
        )
    ]


async def test_a_valid_vcf_with_several_chromosomes_is_stored_with_its_warnings(fm):
    text = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\n"
    text += b"20\t1\t.\tA\tG\t.\t.\t.\tGT\t0|1\n21\t1\t.\tA\tG\t.\t.\t.\tGT\t0|1\n"
    response = await fm.upload(gzip.compress(text), headers=fm.user(1), filename="two.vcf.gz")
    assert response.status_code == 201
    assert response.json()["vcf"]["warnings"] == [
        "The file holds 2 chromosomes (20, 21); Michigan imputation servers take one chromosome per file.",
        "The file is ordinary gzip, not bgzip; imputation servers need bgzip (`bgzip file.vcf`).",
    ]


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            SMALL.read_bytes()[:15000],
            "broken.vcf.gz is not a valid VCF. The file is truncated: the compressed data stops in the middle of a "
            "block, after line 494 of the VCF text.",
        ),
        (
            b"Dear admin,\nplease impute my samples.\n",
            "broken.vcf.gz is not a valid VCF. Line 1: expected '##fileformat=VCFv4.x' but found 'Dear admin,'; "
            "every VCF starts with this line.",
        ),
        (
            bytes(range(256)) * 64,
            "broken.vcf.gz is not a valid VCF. Line 1: expected '##fileformat=VCFv4.x' but found binary data; "
            "this is not a VCF file.",
        ),
        (
            b"\x1f\x8b\x08\x00garbage that only starts like gzip" * 10,
            "broken.vcf.gz is not a valid VCF. The compressed data is corrupt after line 0 of the VCF text "
            "(Error -3 while decompressing data: ",
        ),
    ],
    ids=["truncated", "plain-text", "binary", "garbage-gzip"],
)
async def test_non_vcf_input_is_rejected_with_the_reason_and_nothing_is_kept(fm, data, detail):
    response = await fm.upload(data, headers=fm.user(1), filename="broken.vcf.gz")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_vcf"
    # zlib words its own errors; everything before them is ours.
    assert body["detail"] == detail if detail.endswith(".") else body["detail"].startswith(detail)
    assert fm.stored_files() == []
    assert await rows(fm) == []
    assert (await fm.session.execute(select(OUTBOX))).all() == []


async def test_a_result_file_that_is_not_a_vcf_is_kept_without_vcf_metadata(fm):
    response = await fm.upload(
        b"PK\x03\x04 an encrypted zip of results",
        headers=fm.service(),
        filename="chr_20.zip",
        fields={"purpose": "result", "job_id": "42", "owner_id": "5"},
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["purpose"], body["job_id"], body["owner_id"], body["vcf"]) == ("result", "42", 5, None)
    (row,) = await rows(fm)
    assert row.uploaded_by == "service:job_processor"
    # Results are kept for the configured number of days.
    assert row.expires_at - row.created_at == timedelta(days=30)


async def test_a_result_vcf_is_hashed_and_stored_but_not_inflated_and_checked(fm):
    data = TARGET.read_bytes()
    as_input = await fm.upload(data, headers=fm.user(5), filename="target.vcf.gz")
    assert as_input.json()["vcf"]["sample_count"] == 50
    as_result = await fm.upload(
        data,
        headers=fm.service(),
        filename="imputed.dose.vcf.gz",
        fields={"purpose": "result", "job_id": "43", "owner_id": "5"},
    )
    body = as_result.json()
    assert (as_result.status_code, body["vcf"]) == (201, None)
    assert body["sha256"] == as_input.json()["sha256"] == hashlib.sha256(data).hexdigest()


async def test_only_a_service_may_upload_for_someone_else_and_it_must_say_for_whom(fm):
    response = await fm.upload(TINY, headers=fm.user(1), fields={"owner_id": "2"})
    assert response.status_code == 403
    assert response.json()["detail"] == "Only the platform's services may upload files on another user's behalf."
    response = await fm.upload(TINY, headers=fm.service())
    assert response.status_code == 422
    assert response.json() == {
        "error": "validation_error",
        "detail": "A service account uploads on a user's behalf: send the user's id in owner_id.",
    }
    response = await fm.upload(TINY, headers=fm.user(1), fields={"purpose": "archive"})
    assert response.status_code == 422
    assert response.json()["detail"] == "purpose must be one of input, result, not 'archive'."
    assert fm.stored_files() == []
    assert await rows(fm) == []


@pytest.mark.parametrize(
    "fields", [{"purpose": "result"}, {"job_id": "someone-elses-job"}, {"purpose": "result", "job_id": "42"}]
)
async def test_a_user_may_neither_upload_a_result_nor_link_a_file_to_a_job(fm, fields):
    response = await fm.upload(b"not a VCF at all", headers=fm.user(1), filename="result.zip", fields=fields)
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "Only the platform's services may upload result files or link a file to a job.",
    }
    assert fm.stored_files() == []
    assert await rows(fm) == []


async def test_upload_needs_a_token_a_multipart_body_and_a_file_field(fm):
    assert (await fm.client.post("/files/upload", files={"file": ("a", b"x")})).status_code == 401
    response = await fm.client.post("/files/upload", content=b"raw", headers=fm.user(1))
    assert response.status_code == 415
    response = await fm.client.post("/files/upload", data={"purpose": "input"}, files={}, headers=fm.user(1))
    assert response.status_code in (400, 415)
    body = b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\ninput\r\n--XyZ--\r\n'
    response = await fm.client.post(
        "/files/upload",
        content=body,
        headers={**fm.user(1), "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "missing_file", "detail": "The multipart body has no `file` field."}


async def test_a_body_cut_short_is_refused_and_its_partial_file_removed(fm):
    data = TINY.read_bytes()
    body = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.vcf.gz"\r\n\r\n' + data[:2000]
    response = await fm.client.post(
        "/files/upload",
        content=body,
        headers={**fm.user(1), "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "incomplete_upload",
        "detail": "The upload ended before the whole file arrived.",
    }
    assert fm.stored_files() == []


async def test_file_over_the_limit_is_refused_while_streaming_and_the_partial_file_removed(make_file_manager):
    async with make_file_manager(max_upload_mb=0.01) as fm:

        async def chunked():
            # No Content-Length: the limit can only be seen while the body streams.
            yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.vcf.gz"\r\n\r\n'
            data = SMALL.read_bytes()
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]
            yield b"\r\n--XyZ--\r\n"

        response = await fm.client.post(
            "/files/upload",
            content=chunked(),
            headers={**fm.user(1), "Content-Type": "multipart/form-data; boundary=XyZ"},
        )
        assert response.status_code == 413
        assert response.json() == {
            "error": "file_too_large",
            "detail": "The file is larger than the upload limit of 0.01 MB.",
        }
        assert fm.stored_files() == []
        assert await rows(fm) == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading(make_file_manager):
    async with make_file_manager(max_upload_mb=0.01) as fm:
        response = await fm.client.post(
            "/files/upload",
            content=b"--XyZ--\r\n",
            headers={
                **fm.user(1),
                "Content-Type": "multipart/form-data; boundary=XyZ",
                "Content-Length": str(200 * 1024),
            },
        )
        assert response.status_code == 413
        assert response.json()["error"] == "file_too_large"


async def test_quota_counts_the_owners_files_and_refuses_with_413(make_file_manager):
    async with make_file_manager(user_quota_mb=0.06) as fm:
        assert (await fm.upload(TINY, headers=fm.user(1))).status_code == 201
        response = await fm.upload(HG38, headers=fm.user(1))
        assert response.status_code == 413
        assert response.json() == {
            "error": "quota_exceeded",
            "detail": "The upload would exceed your storage quota of 0.06 MB (0.06 MB left); "
            "delete files you no longer need.",
        }
        # Another user's quota is their own; a service collecting results is not refused.
        assert (await fm.upload(HG38, headers=fm.user(2))).status_code == 201
        response = await fm.upload(HG38, headers=fm.service(), fields={"owner_id": "1", "purpose": "result"})
        assert response.status_code == 201
        assert len(fm.stored_files()) == 3


async def test_services_have_their_own_larger_upload_limit(make_file_manager):
    async with make_file_manager(max_upload_mb=0.01, service_max_upload_mb=1) as fm:
        assert (await fm.upload(SMALL, headers=fm.user(1))).status_code == 413
        response = await fm.upload(SMALL, headers=fm.service(), fields={"owner_id": "1", "purpose": "result"})
        assert response.status_code == 201
        assert response.json()["size_bytes"] == 30148
