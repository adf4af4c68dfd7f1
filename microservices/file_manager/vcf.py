"""VCF checks, fed the bytes of an upload as they arrive: plain text, gzip or bgzip (multi-member gzip).

The inspector never holds more than one decompressed block and one partial line, so a file of any size is
checked in bounded memory, in the same pass that stores it. It rejects what is not a VCF with the line and the
reason, and sums up what is: samples, chromosomes, records, `chr` naming, phasing and a genome build hint.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

Compression = Literal["bgzf", "gzip", "none"]
Build = Literal["hg19", "hg38"]

MB = 1024 * 1024
MAX_LINE_BYTES = 16 * MB
# Bounds each inflate step, so that a highly compressed block never expands into memory all at once.
INFLATE_STEP_BYTES = 4 * 1024 * 1024
SAMPLES_KEPT = 100
FIXED_COLUMNS = (b"#CHROM", b"POS", b"ID", b"REF", b"ALT", b"QUAL", b"FILTER", b"INFO")

GZIP_MAGIC = b"\x1f\x8b"
# The empty block bgzip writes last; without it htslib warns that the file may be truncated.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_OTHER_FORMATS = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"BCF\x02", "a BCF file (binary VCF); convert it with `bcftools view -Oz -o out.vcf.gz`"),
    (b"%PDF", "a PDF document"),
)

# Chromosome lengths of the two builds imputation servers offer (1-22, X, Y), from the assemblies' reports.
CONTIG_LENGTHS: dict[Build, dict[str, int]] = {
    "hg19": {
        "1": 249250621, "2": 243199373, "3": 198022430, "4": 191154276, "5": 180915260, "6": 171115067,
        "7": 159138663, "8": 146364022, "9": 141213431, "10": 135534747, "11": 135006516, "12": 133851895,
        "13": 115169878, "14": 107349540, "15": 102531392, "16": 90354753, "17": 81195210, "18": 78077248,
        "19": 59128983, "20": 63025520, "21": 48129895, "22": 51304566, "X": 155270560, "Y": 59373566,
    },
    "hg38": {
        "1": 248956422, "2": 242193529, "3": 198295559, "4": 190214555, "5": 181538259, "6": 170805979,
        "7": 159345973, "8": 145138636, "9": 138394717, "10": 133797422, "11": 135086622, "12": 133275309,
        "13": 114364328, "14": 107043718, "15": 101991189, "16": 90338345, "17": 83257441, "18": 80373285,
        "19": 58617616, "20": 64444167, "21": 46709983, "22": 50818468, "X": 156040895, "Y": 57227415,
    },
}  # fmt: skip
_REFERENCE_BUILDS: tuple[tuple[re.Pattern[str], Build], ...] = (
    (re.compile(r"hg38|grch38|hs38|b38", re.IGNORECASE), "hg38"),
    (re.compile(r"hg19|grch37|hs37|b37|human_g1k_v37", re.IGNORECASE), "hg19"),
)
_CONTIG = re.compile(rb"^##contig=<(.*)>\s*$")
_CONTIG_FIELD = re.compile(rb"(?:^|,)\s*(ID|length)=([^,>]*)")


class VcfError(Exception):
    """The bytes are not a valid VCF; `line` is the 1-based line of the (decompressed) text, when known."""

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"Line {line}: {reason}" if line else reason[:1].upper() + reason[1:])


@dataclass
class VcfSummary:
    """What the checks found in a valid VCF."""

    file_format: str
    compression: Compression
    samples: list[str]
    sample_count: int
    chromosomes: list[str]
    variant_count: int
    chr_prefix: bool | None
    phased: bool | None
    build_hint: Build | None
    build_hint_source: str | None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form stored with the file and returned by the API."""
        return {
            "file_format": self.file_format,
            "compression": self.compression,
            "samples": self.samples,
            "sample_count": self.sample_count,
            "chromosomes": self.chromosomes,
            "variant_count": self.variant_count,
            "chr_prefix": self.chr_prefix,
            "phased": self.phased,
            "build_hint": self.build_hint,
            "build_hint_source": self.build_hint_source,
            "warnings": self.warnings,
        }


def _show(raw: bytes, limit: int = 60) -> str:
    """A short, printable rendering of a line for an error message."""
    if b"\x00" in raw[:limit]:
        return "binary data"
    text = raw[:limit].decode("utf-8", errors="replace")
    return repr(text + ("…" if len(raw) > limit else ""))


def _strip_chr(name: str) -> str:
    return name[3:] if name.lower().startswith("chr") else name


class VcfInspector:
    """Checks a VCF fed in pieces (`feed`) and sums it up (`finish`); raises VcfError at the first fault."""

    def __init__(self) -> None:
        self._compression: Compression | None = None
        self._head = b""  # the first bytes, until the compression is known
        self._tail = b""  # the last bytes of the raw stream, for the BGZF end-of-file marker
        self._inflater: Any = None
        self._members = 0
        self._carry = b""
        self._chrom_pattern: tuple[bytes, re.Pattern[bytes]] | None = None
        self._line = 0
        self._in_header = True
        self._file_format = ""
        self._contigs: dict[str, int] = {}
        self._reference: str | None = None
        self._columns = 0
        self._samples: list[str] = []
        self._sample_count = 0
        self._chromosomes: list[bytes] = []
        self._seen_chromosomes: set[bytes] = set()
        self._last_chrom: bytes | None = None
        self._last_pos = 0
        self._records = 0
        self._unsorted_line: int | None = None
        self._empty_lines = 0
        self._saw_phased = False
        self._saw_unphased = False

    # --- raw bytes ---------------------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Check the next piece of the file."""
        if not data:
            return
        chunk = bytes(data)
        self._tail = (self._tail + chunk[-len(BGZF_EOF) :])[-len(BGZF_EOF) :]
        if self._compression is None:
            self._head += chunk
            if len(self._head) < 18:  # enough for a BGZF header
                return
            chunk, self._head = self._head, b""
            self._detect(chunk)
        if self._compression == "none":
            self._text(chunk)
        else:
            self._inflate(chunk)

    def _detect(self, start: bytes) -> None:
        if start.startswith(GZIP_MAGIC):
            # FEXTRA with a `BC` subfield marks a BGZF block (SAM/BAM specification, section 4.1).
            is_bgzf = len(start) >= 14 and start[3] & 4 and start[12:14] == b"BC"
            self._compression = "bgzf" if is_bgzf else "gzip"
            return
        for magic, what in _OTHER_FORMATS:
            if start.startswith(magic):
                raise VcfError(f"this is {what}, not a VCF (plain, gzip or bgzip).", line=1)
        self._compression = "none"

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._inflater is None:
                if not data.startswith(GZIP_MAGIC[: len(data)]):
                    raise VcfError(
                        f"the gzip data ends and is followed by {len(data)}+ bytes that are not gzip "
                        f"(after line {self._line} of the VCF text).",
                    )
                self._inflater = zlib.decompressobj(wbits=31)
                self._members += 1
            inflater = self._inflater
            pending = data
            try:
                while True:
                    self._text(inflater.decompress(pending, INFLATE_STEP_BYTES))
                    pending = inflater.unconsumed_tail
                    if inflater.eof or not pending:
                        break
            except zlib.error as exc:
                raise VcfError(
                    f"the compressed data is corrupt after line {self._line} of the VCF text ({exc})."
                ) from exc
            if inflater.eof:
                data = inflater.unused_data
                self._inflater = None
            else:
                data = b""

    # --- text --------------------------------------------------------------------------------------------------

    def _text(self, data: bytes) -> None:
        if not data:
            return
        first = data.find(b"\n")
        if first < 0:
            self._carry += data
            if self._in_header and self._line == 0:
                self._check_first_line(self._carry, complete=False)
            if len(self._carry) > MAX_LINE_BYTES:
                raise VcfError(f"the line is longer than {MAX_LINE_BYTES // MB} MB.", line=self._line + 1)
            return
        # The line carried over from the last piece is completed on its own, so the piece is never copied.
        head, self._carry = self._carry + data[: first + 1], b""
        self._lines(head, 0, len(head))
        last = data.rfind(b"\n")
        if last > first:
            self._lines(data, first + 1, last + 1)
        self._carry = data[last + 1 :]
        if len(self._carry) > MAX_LINE_BYTES:
            raise VcfError(f"the line is longer than {MAX_LINE_BYTES // MB} MB.", line=self._line + 1)

    def _lines(self, data: bytes, start: int, end: int) -> None:
        """Check the whole lines in `data[start:end]` (which ends with a newline)."""
        if self._in_header:
            # The header goes up to the end of the `#CHROM` line, or past this piece.
            if data.startswith(b"#CHROM", start):
                stop = data.index(b"\n", start) + 1
            else:
                chrom_line = data.find(b"\n#CHROM", start, end)
                stop = end if chrom_line < 0 else data.index(b"\n", chrom_line + 1) + 1
            self._header(data[start : stop - 1].split(b"\n"))
            start = stop
        if start < end and not self._in_header:
            self._record_block(data, start, end)

    def _check_first_line(self, line: bytes, *, complete: bool) -> None:
        expected = b"##fileformat=VCF"
        if line.startswith(expected) or (not complete and expected.startswith(line)):
            return
        found = _show(line)
        hint = "this is not a VCF file" if found == "binary data" else "every VCF starts with this line"
        raise VcfError(f"expected '##fileformat=VCFv4.x' but found {found}; {hint}.", line=1)

    def _header(self, lines: list[bytes]) -> list[bytes]:
        """Read header lines; return the record lines that follow the `#CHROM` line."""
        for index, raw in enumerate(lines):
            self._line += 1
            line = raw.rstrip(b"\r")
            if self._line == 1:
                self._check_first_line(line, complete=True)
                self._file_format = line.split(b"=", 1)[1].decode("ascii", errors="replace").strip()
            elif line.startswith(b"##"):
                self._meta(line)
            elif line.startswith(b"#CHROM"):
                self._column_header(line)
                self._in_header = False
                return lines[index + 1 :]
            elif not line:
                raise VcfError("an empty line in the header; the '#CHROM' line must come next.", line=self._line)
            else:
                raise VcfError(
                    f"expected a '##' meta line or the '#CHROM' header line but found {_show(line)}.",
                    line=self._line,
                )
        return []

    def _meta(self, line: bytes) -> None:
        if line.startswith(b"##contig="):
            match = _CONTIG.match(line)
            if match:
                fields = {k.decode(): v.decode("utf-8", errors="replace") for k, v in _CONTIG_FIELD.findall(match[1])}
                if fields.get("ID") and fields.get("length", "").isdigit():
                    self._contigs[fields["ID"]] = int(fields["length"])
        elif line.startswith(b"##reference="):
            self._reference = line[len(b"##reference=") :].decode("utf-8", errors="replace").strip()

    def _column_header(self, line: bytes) -> None:
        columns = line.split(b"\t")
        if len(columns) == 1 and b" " in line:
            raise VcfError("the '#CHROM' header line is not tab-delimited (the columns are separated by spaces).",
                           line=self._line)  # fmt: skip
        for position, (found, expected) in enumerate(zip(columns, FIXED_COLUMNS, strict=False), start=1):
            if found != expected:
                raise VcfError(
                    f"column {position} of the '#CHROM' header line should be '{expected.decode()}' "
                    f"but is {_show(found)}.",
                    line=self._line,
                )
        if len(columns) < len(FIXED_COLUMNS):
            missing = ", ".join(c.decode() for c in FIXED_COLUMNS[len(columns) :])
            raise VcfError(f"the '#CHROM' header line lacks the columns {missing}.", line=self._line)
        if len(columns) > 8 and columns[8] != b"FORMAT":
            raise VcfError(f"column 9 of the '#CHROM' header line should be 'FORMAT' but is {_show(columns[8])}.",
                           line=self._line)  # fmt: skip
        if len(columns) == 9:
            raise VcfError("the '#CHROM' header line has a FORMAT column but no samples.", line=self._line)
        samples = [c.decode("utf-8", errors="replace") for c in columns[9:]]
        seen: set[str] = set()
        for name in samples:
            if not name:
                raise VcfError("a sample name in the '#CHROM' header line is empty.", line=self._line)
            if name in seen:
                raise VcfError(f"the sample name {name!r} appears twice in the '#CHROM' header line.",
                               line=self._line)  # fmt: skip
            seen.add(name)
        self._columns = len(columns)
        self._sample_count = len(samples)
        self._samples = samples[:SAMPLES_KEPT]

    def _record_block(self, data: bytes, start: int, end: int) -> None:
        """Check record lines (`data[start:end]`, whole lines) with whole-block operations where they suffice.

        Per-line Python and copies are what limit a large upload, so a block is checked at once when it is the
        usual case: one chromosome, the header's column count (summed over the block), numeric sorted positions.
        Any other block goes line by line, which finds and names the faulty line.
        """
        count = data.count(b"\n", start, end)
        first_tab = data.find(b"\t", start, end)
        first_end = data.find(b"\n", start, end)
        chrom = data[start:first_tab] if start < first_tab < first_end else b""
        positions: list[bytes] = []
        # An empty or short line shows in the tab total; a line of another chromosome in the positions found.
        if chrom and data.count(b"\t", start, end) == count * (self._columns - 1):
            if self._chrom_pattern is None or self._chrom_pattern[0] != chrom:
                self._chrom_pattern = (chrom, re.compile(b"\n" + re.escape(chrom) + rb"\t([^\t\n]*)\t"))
            positions = self._chrom_pattern[1].findall(data, start, end)
            positions.insert(0, data[first_tab + 1 : data.find(b"\t", first_tab + 1, end)])
        if len(positions) != count or b"" in positions or not b"".join(positions).isdigit():
            self._body(data[start : end - 1].split(b"\n"))
            return
        numbers = list(map(int, positions))
        if numbers != sorted(numbers):
            self._body(data[start : end - 1].split(b"\n"))
            return
        if chrom != self._last_chrom:
            if chrom in self._seen_chromosomes:
                self._unsorted_line = self._unsorted_line or self._line + 1
            else:
                self._seen_chromosomes.add(chrom)
                self._chromosomes.append(chrom)
            self._last_chrom, self._last_pos = chrom, 0
        if numbers[0] < self._last_pos and self._unsorted_line is None:
            self._unsorted_line = self._line + 1
        self._last_pos = numbers[-1]
        if self._columns > 9:
            if not self._saw_unphased and data.find(b"/", start, end) >= 0:
                self._scan_genotypes(data, start, end, b"/")
            if not self._saw_phased and data.find(b"|", start, end) >= 0:
                self._scan_genotypes(data, start, end, b"|")
        self._records += count
        self._line += count

    def _scan_genotypes(self, data: bytes, start: int, end: int, separator: bytes) -> None:
        index = data.find(separator, start, end)
        while index >= 0:
            line_start = max(start, data.rfind(b"\n", start, index) + 1)
            line_end = data.find(b"\n", index, end)
            self._genotypes(data[line_start:line_end], separator)
            if self._saw_unphased if separator == b"/" else self._saw_phased:
                return
            index = data.find(separator, line_end, end)

    def _body(self, lines: list[bytes]) -> None:
        expected_tabs = self._columns - 1
        has_genotypes = self._columns > 9
        line_number = self._line
        empty = 0
        for line in lines:
            line_number += 1
            if not line or line == b"\r":
                empty += 1
                continue
            tabs = line.count(b"\t")
            if tabs != expected_tabs:
                self._line = line_number
                self._bad_columns(line, tabs)
            chrom, pos, _ = line.split(b"\t", 2)
            if chrom != self._last_chrom:
                if chrom in self._seen_chromosomes:
                    self._unsorted_line = self._unsorted_line or line_number
                else:
                    if not chrom:
                        raise VcfError("the CHROM column is empty.", line=line_number)
                    self._seen_chromosomes.add(chrom)
                    self._chromosomes.append(chrom)
                self._last_chrom = chrom
                self._last_pos = 0
            if not pos.isdigit():
                raise VcfError(f"POS {_show(pos)} is not a whole number.", line=line_number)
            position = int(pos)
            if position < self._last_pos and self._unsorted_line is None:
                self._unsorted_line = line_number
            self._last_pos = position
            # A full parse only for the few lines that can settle the phasing question.
            if has_genotypes:
                if not self._saw_unphased and b"/" in line:
                    self._genotypes(line, b"/")
                if not self._saw_phased and b"|" in line:
                    self._genotypes(line, b"|")
        self._records += len(lines) - empty
        self._empty_lines += empty
        self._line = line_number

    def _bad_columns(self, line: bytes, tabs: int) -> None:
        spaces = " (the columns seem to be separated by spaces)" if tabs == 0 and b" " in line else ""
        raise VcfError(
            f"expected {self._columns} tab-separated columns as in the '#CHROM' header line "
            f"but found {tabs + 1}{spaces}.",
            line=self._line,
        )

    def _genotypes(self, line: bytes, separator: bytes) -> None:
        fields = line.rstrip(b"\r").split(b"\t")
        if not fields[8].startswith(b"GT"):
            return
        for sample in fields[9:]:
            genotype = sample.split(b":", 1)[0]
            if separator in genotype:
                if separator == b"/":
                    self._saw_unphased = True
                else:
                    self._saw_phased = True
                return

    # --- the end -----------------------------------------------------------------------------------------------

    def finish(self) -> VcfSummary:
        """Check the end of the file and sum it up."""
        if self._compression is None:
            head, self._head = self._head, b""
            if not head:
                raise VcfError("the file is empty.")
            self._detect(head)
            if self._compression == "none":
                self._text(head)
            else:
                self._inflate(head)
        if self._inflater is not None:
            raise VcfError(
                f"the file is truncated: the compressed data stops in the middle of a block, "
                f"after line {self._line} of the VCF text."
            )
        if self._carry:
            tail, self._carry = self._carry, b""
            if self._in_header:
                self._header([tail])
            else:
                self._body([tail])
        if self._line == 0:
            raise VcfError("the file is empty.")
        if self._in_header:
            raise VcfError(f"the file ends after {self._line} lines without the '#CHROM' header line.")
        return self._summary()

    def _summary(self) -> VcfSummary:
        chromosomes = [c.decode("utf-8", errors="replace") for c in self._chromosomes]
        prefixed = sum(1 for c in chromosomes if c.lower().startswith("chr"))
        chr_prefix = None if not chromosomes or 0 < prefixed < len(chromosomes) else prefixed == len(chromosomes)
        build, source, warnings = self._build_hint()
        if len(chromosomes) > 1:
            warnings.append(
                f"The file holds {len(chromosomes)} chromosomes ({', '.join(chromosomes[:10])}"
                f"{', …' if len(chromosomes) > 10 else ''}); Michigan imputation servers take one chromosome "
                "per file."
            )
        if chromosomes and chr_prefix is None:
            warnings.append("Some chromosome names have the 'chr' prefix and some do not.")
        if self._compression != "bgzf":
            kind = "plain text" if self._compression == "none" else "ordinary gzip"
            warnings.append(f"The file is {kind}, not bgzip; imputation servers need bgzip (`bgzip file.vcf`).")
        elif self._tail != BGZF_EOF:
            warnings.append("The bgzip end-of-file marker is missing; the file may be truncated.")
        if self._unsorted_line is not None:
            warnings.append(f"The records are not sorted by chromosome and position (from line {self._unsorted_line}).")
        if self._sample_count == 0:
            warnings.append("The file has no samples (a sites-only VCF); imputation needs genotypes.")
        if self._records == 0:
            warnings.append("The file has a header but no variant records.")
        if self._empty_lines:
            warnings.append(f"{self._empty_lines} empty line(s) skipped.")
        phased = None if not (self._saw_phased or self._saw_unphased) else not self._saw_unphased
        return VcfSummary(
            file_format=self._file_format,
            compression=self._compression or "none",
            samples=self._samples,
            sample_count=self._sample_count,
            chromosomes=chromosomes,
            variant_count=self._records,
            chr_prefix=chr_prefix,
            phased=phased,
            build_hint=build,
            build_hint_source=source,
            warnings=warnings,
        )

    def _build_hint(self) -> tuple[Build | None, str | None, list[str]]:
        warnings: list[str] = []
        votes: dict[Build, int] = {"hg19": 0, "hg38": 0}
        for name, length in self._contigs.items():
            for build, lengths in CONTIG_LENGTHS.items():
                if lengths.get(_strip_chr(name)) == length:
                    votes[build] += 1
        from_contigs: Build | None = None
        if votes["hg19"] != votes["hg38"]:
            from_contigs = "hg19" if votes["hg19"] > votes["hg38"] else "hg38"
        from_reference: Build | None = None
        if self._reference:
            for pattern, build in _REFERENCE_BUILDS:
                if pattern.search(self._reference):
                    from_reference = build
                    break
        if from_contigs and from_reference and from_contigs != from_reference:
            warnings.append(f"The contig lengths are those of {from_contigs} but ##reference names {from_reference}.")
        if from_contigs:
            return from_contigs, "contig lengths", warnings
        if from_reference:
            return from_reference, "##reference", warnings
        return None, None, warnings


def inspect_bytes(data: bytes) -> VcfSummary:
    """Check a whole VCF held in memory (small files, tests)."""
    inspector = VcfInspector()
    inspector.feed(data)
    return inspector.finish()
