"""Pre-flight rules: what the target server would refuse, checked before anything is sent.

Each problem names the file (or the setting) and says how to fix it; the caller turns them into one 422.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "file": self.file}


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def check(
    *,
    service: dict[str, Any],
    panel: dict[str, Any],
    files: Sequence[dict[str, Any]],
    build: str,
    phasing: bool,
    population: str | None,
) -> list[Problem]:
    """Every problem the request has for this service and panel; empty when it may be submitted."""
    problems: list[Problem] = []
    api_type = service.get("api_type")
    service_name = service.get("name") or f"service {service.get('id')}"
    supported = service.get("supported_builds") or []
    if supported and build not in supported:
        problems.append(
            Problem("build_not_supported", f"{service_name} accepts builds {', '.join(supported)}, not {build}.")
        )
    panel_build = panel.get("build")
    if api_type != "michigan" and panel_build and panel_build != build:
        # Michigan lifts the input over to the panel's build; the shipped WES workflow does not.
        problems.append(
            Problem(
                "build_mismatch",
                f"Reference panel '{panel.get('name')}' is on {panel_build} but the job says {build}: choose "
                f"build {panel_build} (with data on that build) or a panel on {build}.",
            )
        )
    populations = panel.get("populations") or []
    if population and populations and population not in populations and population not in ("off", "all", "mixed"):
        problems.append(
            Problem(
                "population_not_supported",
                f"Population '{population}' is not supported by reference panel '{panel.get('name')}'; "
                f"choose one of {', '.join(populations)}.",
            )
        )
    if api_type in ("ga4gh_wes", "dnastack"):
        if len(files) != 1:
            problems.append(
                Problem(
                    "one_file_per_job",
                    f"{service_name} imputes one target VCF per job; submit the {len(files)} files as a batch.",
                )
            )
        if not (panel.get("parameters") or {}).get("reference_vcf"):
            problems.append(
                Problem(
                    "panel_not_configured",
                    f"Reference panel '{panel.get('name')}' has no node-side reference_vcf parameter; an admin "
                    "must set it in the registry before jobs can use it.",
                )
            )
    max_mb = service.get("max_upload_size_mb")
    min_samples, max_samples = service.get("min_samples"), service.get("max_samples")
    for record in files:
        problems.extend(_check_file(record, api_type, build, phasing, max_mb, min_samples, max_samples))
    return problems


def _check_file(
    record: dict[str, Any],
    api_type: str | None,
    build: str,
    phasing: bool,
    max_mb: float | None,
    min_samples: int | None,
    max_samples: int | None,
) -> list[Problem]:
    name = str(record.get("filename") or record.get("id"))
    vcf = record.get("vcf")
    problems: list[Problem] = []
    size = int(record.get("size_bytes") or 0)
    if max_mb and size > max_mb * 1_000_000:
        problems.append(
            Problem(
                "file_too_large",
                f"Input file '{name}' is {_mb(size)}; this service accepts at most {max_mb} MB per file: "
                "split it by chromosome or region.",
                name,
            )
        )
    if not vcf:
        problems.append(
            Problem("not_a_vcf", f"Input file '{name}' is not a VCF the file manager could read; upload a VCF.", name)
        )
        return problems
    chromosomes = [str(c) for c in vcf.get("chromosomes") or []]
    if len(chromosomes) > 1:
        first = chromosomes[0]
        problems.append(
            Problem(
                "several_chromosomes",
                f"Input file '{name}' contains chromosomes {', '.join(chromosomes)}; this service takes one "
                f"chromosome per file: split it (e.g. `bcftools view -r {first} -Oz`) and upload each file.",
                name,
            )
        )
    has_chr = bool(vcf.get("chr_prefix"))
    if api_type == "michigan" and chromosomes:
        example = chromosomes[0]
        if build == "hg19" and has_chr:
            problems.append(
                Problem(
                    "chr_prefix_hg19",
                    f"Input file '{name}' names its chromosome '{example}'; hg19 data must not use the 'chr' "
                    "prefix: rename the contigs (`bcftools annotate --rename-chrs`) or choose build hg38 if the "
                    "data is on GRCh38.",
                    name,
                )
            )
        elif build == "hg38" and not has_chr:
            problems.append(
                Problem(
                    "chr_prefix_hg38",
                    f"Input file '{name}' names its chromosome '{example}'; hg38 data must use the 'chr' prefix "
                    f"('chr{example}'): rename the contigs (`bcftools annotate --rename-chrs`) or choose build "
                    "hg19 if the data is on GRCh37.",
                    name,
                )
            )
    hint = vcf.get("build_hint")
    if hint in ("hg19", "hg38") and hint != build:
        problems.append(
            Problem(
                "build_hint_mismatch",
                f"Input file '{name}' looks like {hint} (its header's contig lengths or reference) but the job "
                f"says {build}: choose build {hint}, or lift the data over to {build}.",
                name,
            )
        )
    samples = vcf.get("sample_count")
    if samples is not None:
        if min_samples and samples < min_samples:
            problems.append(
                Problem(
                    "too_few_samples",
                    f"Input file '{name}' has {samples} samples; this service needs at least {min_samples}: "
                    "add samples or merge cohorts before submitting.",
                    name,
                )
            )
        if max_samples and samples > max_samples:
            problems.append(
                Problem(
                    "too_many_samples",
                    f"Input file '{name}' has {samples} samples; this service takes at most {max_samples}: "
                    "split the samples over several files.",
                    name,
                )
            )
    if vcf.get("phased") is False and not phasing:
        problems.append(
            Problem(
                "unphased_without_phasing",
                f"Input file '{name}' is unphased and phasing is switched off: switch phasing on, or upload "
                "phased data.",
                name,
            )
        )
    return problems
