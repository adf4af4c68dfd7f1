#!/usr/bin/env cwl-runner
# Phasing and imputation of one chromosome with Beagle 5 against a reference panel kept on the WES node.
# Only the researcher's target VCF travels; the panel and genetic map are node-side paths that the registry's
# panel `parameters` supply. Host tools, no containers: Debian's `beagle` jar and `bcftools`.
cwlVersion: v1.2
class: Workflow
label: Beagle phasing and imputation
doc: |
  Phases and imputes a target VCF (one chromosome, bgzipped) with Beagle against a phased reference panel,
  then restores the `##contig` header lines Beagle drops and indexes the result with tabix.

inputs:
  target_vcf:
    type: File
    doc: The researcher's genotypes (bgzipped VCF, one chromosome, phased or not).
  reference_vcf:
    type: File
    doc: Phased reference panel on the node (VCF or bref3).
  genetic_map:
    type: File?
    doc: PLINK-format genetic map of the chromosome (Beagle's `map=`).
  output_prefix:
    type: string
    default: imputed
  java_heap:
    type: string
    default: 1g
    doc: Java heap for Beagle (the Debian wrapper passes no limit, so the jar is called directly).
  nthreads:
    type: int
    default: 2
  seed:
    type: int
    default: 1
  window_cm:
    type: float?
    doc: Beagle's `window=` in cM (its default when unset).

outputs:
  imputed_vcf:
    type: File
    outputSource: finalise/imputed_vcf
    secondaryFiles: [.tbi]
  beagle_log:
    type: File
    outputSource: impute/log

steps:
  impute:
    run: beagle.cwl
    in:
      target_vcf: target_vcf
      reference_vcf: reference_vcf
      genetic_map: genetic_map
      output_prefix: output_prefix
      java_heap: java_heap
      nthreads: nthreads
      seed: seed
      window_cm: window_cm
    out: [vcf, log]
  finalise:
    run: finalise.cwl
    in:
      vcf: impute/vcf
      reference_vcf: reference_vcf
      output_prefix: output_prefix
    out: [imputed_vcf]
