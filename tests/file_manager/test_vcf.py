"""The VCF inspector on the project's test VCFs and on every kind of bad input, fed whole and in small pieces."""

import gzip
from pathlib import Path

import pytest

from microservices.file_manager.vcf import VcfError, VcfInspector, inspect_bytes

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = DATA / "seed-samples" / "chr20.tiny.100snps.vcf.gz"
SMALL = DATA / "seed-samples" / "chr20.small.1000snps.vcf.gz"
HG38 = DATA / "seed-samples" / "chr22.hg38.7samples.phased.vcf.gz"
TARGET = DATA / "sim-1mb" / "target.vcf.gz"

HEADER = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n"


def record(chrom: str, pos: int, gt1: str = "0|1", gt2: str = "1|1") -> bytes:
    return f"{chrom}\t{pos}\t.\tA\tG\t.\tPASS\t.\tGT\t{gt1}\t{gt2}\n".encode()


def fed_in_pieces(data: bytes, size: int):
    inspector = VcfInspector()
    for start in range(0, len(data), size):
        inspector.feed(data[start : start + size])
    return inspector.finish()


@pytest.mark.parametrize(
    ("path", "samples", "first", "variants", "chromosomes", "prefix", "phased", "build", "source"),
    [
        (TINY, 51, "FB00000", 100, ["20"], False, True, None, None),
        (SMALL, 51, "FB00000", 1000, ["20"], False, True, None, None),
        (HG38, 7, "NA21102", 2527, ["chr22"], True, True, "hg38", "contig lengths"),
        (TARGET, 50, "TGT_YRI_0001", 193, ["20"], False, False, None, None),
    ],
)
def test_test_vcfs_are_summed_up_exactly(path, samples, first, variants, chromosomes, prefix, phased, build, source):
    summary = inspect_bytes(path.read_bytes())
    assert summary.file_format == "VCFv4.2"
    assert summary.compression == "bgzf"
    assert summary.sample_count == samples
    assert summary.samples[0] == first
    assert len(summary.samples) == samples
    assert summary.variant_count == variants
    assert summary.chromosomes == chromosomes
    assert summary.chr_prefix is prefix
    assert summary.phased is phased
    assert summary.build_hint == build
    assert summary.build_hint_source == source
    assert summary.warnings == []


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_feeding_in_pieces_gives_the_same_summary(piece):
    data = HG38.read_bytes()
    assert fed_in_pieces(data, piece) == inspect_bytes(data)


def test_plain_text_vcf_is_accepted_with_a_bgzip_warning():
    summary = inspect_bytes(HEADER + record("20", 5) + record("20", 9))
    assert summary.compression == "none"
    assert summary.variant_count == 2
    assert summary.warnings == ["The file is plain text, not bgzip; imputation servers need bgzip (`bgzip file.vcf`)."]


def test_ordinary_gzip_is_read_and_named():
    summary = inspect_bytes(gzip.compress(HEADER + record("20", 5)))
    assert summary.compression == "gzip"
    assert summary.variant_count == 1
    assert summary.warnings == [
        "The file is ordinary gzip, not bgzip; imputation servers need bgzip (`bgzip file.vcf`)."
    ]


def test_only_the_first_100_sample_ids_are_kept():
    names = "\t".join(f"S{i}" for i in range(250))
    header = f"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{names}\n".encode()
    line = ("20\t1\t.\tA\tG\t.\t.\t.\tGT\t" + "\t".join(["0|0"] * 250) + "\n").encode()
    summary = inspect_bytes(header + line)
    assert summary.sample_count == 250
    assert summary.samples == [f"S{i}" for i in range(100)]


def test_several_chromosomes_unsorted_records_and_mixed_prefixes_are_warnings():
    data = HEADER + record("20", 5) + record("chr21", 3) + record("20", 7)
    summary = inspect_bytes(data)
    assert summary.chromosomes == ["20", "chr21"]
    assert summary.chr_prefix is None
    assert summary.variant_count == 3
    assert summary.warnings == [
        "The file holds 2 chromosomes (20, chr21); Michigan imputation servers take one chromosome per file.",
        "Some chromosome names have the 'chr' prefix and some do not.",
        "The file is plain text, not bgzip; imputation servers need bgzip (`bgzip file.vcf`).",
        "The records are not sorted by chromosome and position (from line 5).",
    ]


def test_build_hint_from_reference_line_and_hg19_contig_lengths():
    reference = b"##fileformat=VCFv4.1\n##reference=file:///ref/human_g1k_v37.fasta\n" + HEADER.split(b"\n", 1)[1]
    assert inspect_bytes(reference + record("20", 1)).build_hint == "hg19"
    contigs = b"##fileformat=VCFv4.2\n##contig=<ID=20,length=63025520,assembly=b37>\n" + HEADER.split(b"\n", 1)[1]
    summary = inspect_bytes(contigs + record("20", 1))
    assert (summary.build_hint, summary.build_hint_source) == ("hg19", "contig lengths")


def test_mixed_phasing_is_unphased_and_haploid_only_is_unknown():
    assert inspect_bytes(HEADER + record("20", 1) + record("20", 2, "0/1")).phased is False
    assert inspect_bytes(HEADER + record("X", 1, "0", "1")).phased is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (
            b"hello, this is my thesis\nnot a vcf\n",
            "Line 1: expected '##fileformat=VCFv4.x' but found 'hello, this is my thesis'; "
            "every VCF starts with this line.",
        ),
        (
            bytes(range(256)) * 4,
            "Line 1: expected '##fileformat=VCFv4.x' but found binary data; this is not a VCF file.",
        ),
        (b"PK\x03\x04" + b"\x00" * 100, "Line 1: this is a ZIP archive, not a VCF (plain, gzip or bgzip)."),
        (
            HEADER.replace(b"\t", b" ") + record("20", 1),
            "Line 2: the '#CHROM' header line is not tab-delimited (the columns are separated by spaces).",
        ),
        (
            HEADER + b"20 5 . A G . PASS . GT 0|1 1|1\n",
            "Line 3: expected 11 tab-separated columns as in the '#CHROM' header line but found 1 "
            "(the columns seem to be separated by spaces).",
        ),
        (
            HEADER + record("20", 1) + b"20\t7\t.\tA\tG\t.\tPASS",
            "Line 4: expected 11 tab-separated columns as in the '#CHROM' header line but found 7.",
        ),
        (HEADER + b"20\tfive\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t1|1\n", "Line 3: POS 'five' is not a whole number."),
        (
            b"##fileformat=VCFv4.2\n##source=x\n",
            "The file ends after 2 lines without the '#CHROM' header line.",
        ),
        (
            b"##fileformat=VCFv4.2\n20\t5\t.\tA\tG\n",
            "Line 2: expected a '##' meta line or the '#CHROM' header line but found '20\\t5\\t.\\tA\\tG'.",
        ),
        (
            b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS1\n",
            "Line 2: the sample name 'S1' appears twice in the '#CHROM' header line.",
        ),
    ],
)
def test_bad_input_is_rejected_naming_the_line_and_why(data, message):
    with pytest.raises(VcfError) as error:
        inspect_bytes(data)
    assert str(error.value) == message


def test_truncated_bgzip_is_rejected():
    data = SMALL.read_bytes()
    with pytest.raises(VcfError) as error:
        inspect_bytes(data[: len(data) // 2])
    assert str(error.value).startswith("The file is truncated: the compressed data stops in the middle of a block")


def test_corrupt_gzip_is_rejected():
    data = bytearray(TINY.read_bytes())
    data[200:260] = b"\x00" * 60
    with pytest.raises(VcfError) as error:
        inspect_bytes(bytes(data))
    assert str(error.value).startswith("The compressed data is corrupt after line")


def test_gzip_of_something_else_is_rejected_at_line_1():
    with pytest.raises(VcfError) as error:
        inspect_bytes(gzip.compress(b"sample\tgenotype\nNA1\tAA\n"))
    assert str(error.value) == (
        "Line 1: expected '##fileformat=VCFv4.x' but found 'sample\\tgenotype'; every VCF starts with this line."
    )


def test_bgzip_without_its_end_marker_is_a_warning():
    data = TINY.read_bytes()
    summary = inspect_bytes(data[:-28])
    assert summary.variant_count == 100
    assert summary.warnings == ["The bgzip end-of-file marker is missing; the file may be truncated."]


def large_vcf(n: int, *, edit: dict[int, bytes] | None = None) -> bytes:
    """`n` records on chromosome 20 then 21, each line's content replaceable by record index."""
    lines = [HEADER]
    for index in range(n):
        chrom = "20" if index < n // 2 else "21"
        lines.append((edit or {}).get(index, record(chrom, 1000 + index)))
    return b"".join(lines)


@pytest.mark.parametrize("piece", [65536, 1 << 20])
def test_a_large_file_checked_block_by_block_matches_line_by_line(piece):
    data = large_vcf(60_000, edit={45_000: record("21", 1000 + 45_000, "0/1"), 50_000: record("21", 5)})
    summary = fed_in_pieces(data, piece)
    assert summary.variant_count == 60_000
    assert summary.chromosomes == ["20", "21"]
    assert summary.phased is False
    # Record index 50,000 is line 50,003 (two header lines).
    assert "The records are not sorted by chromosome and position (from line 50003)." in summary.warnings


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            b"20\t7\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\n",
            "Line 40003: expected 11 tab-separated columns as in the '#CHROM' header line but found 10.",
        ),
        (b"20\t7x\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0\n", "Line 40003: POS '7x' is not a whole number."),
    ],
)
def test_a_bad_line_deep_inside_a_large_file_is_named(edit, message):
    data = large_vcf(60_000, edit={40_000: edit})
    with pytest.raises(VcfError) as error:
        fed_in_pieces(data, 1 << 20)
    assert str(error.value) == message


def test_an_empty_line_inside_a_block_is_skipped_with_a_warning():
    summary = fed_in_pieces(large_vcf(30_000, edit={20_000: b"\n"}), 1 << 20)
    assert summary.variant_count == 29_999
    assert summary.warnings[-1] == "1 empty line(s) skipped."
