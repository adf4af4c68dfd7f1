"""Imputation accuracy against the held-out truth, in plain Python (no cyvcf2, no numpy).

The same measures as the data set's `eval_accuracy.py`: only masked sites (in the truth, not on the target
array), matched on CHROM/POS/REF/ALT; concordance of the output's hard-call genotypes with the truth; per-variant
dosage r² = corr(true ALT count, FORMAT/DS)², for variants polymorphic in the truth, binned by reference-panel MAF.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

Key = tuple[str, int, str, str]


@dataclass(frozen=True)
class Accuracy:
    masked_sites: int
    missing_in_output: int
    records: int
    samples: list[str]
    concordance: float
    mean_r2_maf_over_5pct: float
    mean_r2_all: float
    records_with_ds_and_dr2: int


def _records(path: Path) -> Iterator[tuple[list[str], list[str]]]:
    samples: list[str] = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith("##"):
                continue
            fields = line.rstrip("\n").split("\t")
            if line.startswith("#CHROM"):
                samples = fields[9:]
                continue
            yield samples, fields


def _key(fields: list[str]) -> Key:
    return (fields[0], int(fields[1]), fields[3], fields[4])


def _alt_count(genotype: str) -> int:
    return sum(int(a) for a in genotype.replace("|", "/").split("/"))


def _r2(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0:
        return None  # monomorphic in the truth: not scored
    if syy == 0:
        return 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy * sxy / (sxx * syy)


def evaluate(*, reference: Path, truth: Path, target: Path, imputed: Path) -> Accuracy:
    """Accuracy of `imputed` at the sites masked from `target`, against `truth`."""
    maf: dict[Key, float] = {}
    for _, fields in _records(reference):
        genotypes = fields[9:]
        alt = sum(_alt_count(g) for g in genotypes)
        frequency = alt / (2 * len(genotypes))
        maf[_key(fields)] = min(frequency, 1 - frequency)
    typed = {_key(fields) for _, fields in _records(target)}
    true: dict[Key, list[int]] = {}
    truth_samples: list[str] = []
    for samples_in_truth, fields in _records(truth):
        truth_samples = samples_in_truth
        if _key(fields) not in typed:
            true[_key(fields)] = [_alt_count(g) for g in fields[9:]]
    matches = total = records = with_ds_and_dr2 = 0
    r2_common: list[float] = []
    r2_all: list[float] = []
    seen: set[Key] = set()
    samples: list[str] = []
    for samples, fields in _records(imputed):
        records += 1
        keys = fields[8].split(":")
        gt_at, has_ds = keys.index("GT"), "DS" in keys
        if has_ds and "DR2=" in fields[7]:
            with_ds_and_dr2 += 1
        key = _key(fields)
        if key not in true:
            continue
        seen.add(key)
        order = [samples.index(s) for s in truth_samples]
        values = [fields[9 + i].split(":") for i in order]
        called = [_alt_count(v[gt_at]) for v in values]
        expected = true[key]
        matches += sum(c == t for c, t in zip(called, expected, strict=True))
        total += len(expected)
        if has_ds:
            dosages = [float(v[keys.index("DS")]) for v in values]
            r2 = _r2([float(t) for t in expected], dosages)
            if r2 is not None:
                r2_all.append(r2)
                if maf.get(key, 0.0) >= 0.05:
                    r2_common.append(r2)
    return Accuracy(
        masked_sites=len(true),
        missing_in_output=len(true) - len(seen),
        records=records,
        samples=samples,
        concordance=matches / total if total else 0.0,
        mean_r2_maf_over_5pct=sum(r2_common) / len(r2_common) if r2_common else 0.0,
        mean_r2_all=sum(r2_all) / len(r2_all) if r2_all else 0.0,
        records_with_ds_and_dr2=with_ds_and_dr2,
    )
