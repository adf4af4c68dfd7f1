"""The multipart upload parser on its own: every byte written once, in order, in bounded memory."""

import hashlib
import tracemalloc

import pytest

from microservices.common.errors import PayloadTooLarge
from microservices.file_manager.storage import PendingObject
from microservices.file_manager.upload import UploadLimits, receive_upload

BOUNDARY = b"----bench-boundary-7MA4YWxkTrZu0gW"
MB = 1024 * 1024


class RecordingPending(PendingObject):
    """Keeps only a running hash and count of what is written, as a disk would receive it."""

    def __init__(self) -> None:
        self.key = "ab/ab00"
        self.written = 0
        self.writes = 0
        self.sha256 = hashlib.sha256()
        self.discarded = False

    async def write(self, data: bytes | bytearray) -> None:
        self.written += len(data)
        self.writes += 1
        self.sha256.update(data)

    async def commit(self) -> None:
        pass

    async def discard(self) -> None:
        self.discarded = True


def vcf_block(first: int, count: int) -> bytes:
    genotypes = "\t".join(["0|1"] * 20)
    return "".join(f"20\t{first + i}\t.\tA\tG\t.\tPASS\t.\tGT\t{genotypes}\n" for i in range(count)).encode()


def vcf_text(total_records: int) -> list[bytes]:
    samples = "\t".join(f"S{i}" for i in range(20))
    header = f"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}\n".encode()
    return [header, *(vcf_block(first + 1, 10_000) for first in range(0, total_records, 10_000))]


async def body(text: list[bytes], piece: int = 65536):
    """A multipart body around `text`, produced piece by piece like a socket would."""
    yield b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="job_id"\r\n\r\njob-9\r\n'
    yield b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="../../etc/big.vcf"\r\n\r\n'
    for block in text:
        for start in range(0, len(block), piece):
            yield block[start : start + piece]
    yield b"\r\n--" + BOUNDARY + b"--\r\n"


async def test_a_large_body_is_written_once_in_order_without_being_held_in_memory():
    text = vcf_text(120_000)  # made before memory is traced
    expected = hashlib.sha256(b"".join(text)).hexdigest()
    pending = RecordingPending()
    tracemalloc.start()
    try:
        received = await receive_upload(
            body(text), boundary=BOUNDARY, limits=UploadLimits(max_upload_bytes=500 * MB), pending=pending
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received.size_bytes == pending.written == sum(len(block) for block in text) > 12 * MB
    assert received.sha256 == pending.sha256.hexdigest() == expected
    assert pending.writes == -(-received.size_bytes // MB)  # 1 MB blocks
    assert received.filename == "big.vcf"  # no directories from the client's name
    assert received.fields == {"job_id": "job-9"}
    assert received.vcf is not None and received.vcf.variant_count == 120_000
    # A few blocks and the parser's pieces, never the file.
    assert peak < 6 * MB, peak


async def test_the_limit_stops_the_stream_and_discards_what_was_written():
    pending = RecordingPending()
    with pytest.raises(PayloadTooLarge):
        await receive_upload(
            body(vcf_text(100_000)), boundary=BOUNDARY, limits=UploadLimits(max_upload_bytes=5 * MB), pending=pending
        )
    assert pending.discarded
    assert pending.written <= 5 * MB
