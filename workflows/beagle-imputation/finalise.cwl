#!/usr/bin/env cwl-runner
# Beagle drops the `##contig` lines; stricter tools need them, so they are copied from the panel's header (or
# made from the records when the panel has none), then the file is bgzipped again and tabix-indexed.
cwlVersion: v1.2
class: CommandLineTool
label: Restore contigs and index
requirements:
  InitialWorkDirRequirement:
    listing:
      - entryname: finalise.sh
        entry: |
          set -euo pipefail
          in="$1"; ref="$2"; out="$3.vcf.gz"
          bcftools view -h "$ref" | grep '^##contig=' > contigs.txt || true
          if [ ! -s contigs.txt ]; then
            bcftools query -f '%CHROM\n' "$in" | uniq | sort -u | sed 's/.*/##contig=<ID=&>/' > contigs.txt
          fi
          bcftools annotate --no-version --header-lines contigs.txt -Oz -o "$out" "$in"
          bcftools index --tbi "$out"
baseCommand: [bash, finalise.sh]
inputs:
  vcf:
    type: File
    inputBinding: {position: 1}
  reference_vcf:
    type: File
    inputBinding: {position: 2}
  output_prefix:
    type: string
    inputBinding: {position: 3}
outputs:
  imputed_vcf:
    type: File
    outputBinding: {glob: $(inputs.output_prefix).vcf.gz}
    secondaryFiles: [.tbi]
