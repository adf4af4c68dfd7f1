#!/usr/bin/env cwl-runner
# Beagle 5 phasing and imputation; Beagle writes `<out>.vcf.gz` and `<out>.log`.
cwlVersion: v1.2
class: CommandLineTool
label: Beagle
baseCommand: [java]
arguments:
  - valueFrom: -Xmx$(inputs.java_heap)
    position: 0
  - valueFrom: -jar
    position: 1
  - valueFrom: /usr/share/beagle/beagle.jar
    position: 2
  - valueFrom: out=$(inputs.output_prefix).beagle
    position: 10
inputs:
  target_vcf:
    type: File
    inputBinding: {prefix: "gt=", separate: false, position: 3}
  reference_vcf:
    type: File
    inputBinding: {prefix: "ref=", separate: false, position: 4}
  genetic_map:
    type: File?
    inputBinding: {prefix: "map=", separate: false, position: 5}
  nthreads:
    type: int
    inputBinding: {prefix: "nthreads=", separate: false, position: 6}
  seed:
    type: int
    inputBinding: {prefix: "seed=", separate: false, position: 7}
  window_cm:
    type: float?
    inputBinding: {prefix: "window=", separate: false, position: 8}
  output_prefix: string
  java_heap: string
outputs:
  vcf:
    type: File
    outputBinding: {glob: $(inputs.output_prefix).beagle.vcf.gz}
  log:
    type: File
    outputBinding: {glob: $(inputs.output_prefix).beagle.log}
