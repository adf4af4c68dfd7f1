/** 1536 → "1.5 KB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function formatNumber(value: number | null | undefined): string {
  return value === null || value === undefined ? '—' : value.toLocaleString();
}

/** Remote servers' errors in words a researcher can act on; the raw text stays available beside it. */
export function explainRemoteError(message: string | null | undefined): string | null {
  if (!message) return null;
  const text = message.toLowerCase();
  const rules: [RegExp, string][] = [
    [/401|unauthori[sz]ed|invalid token|api token/, 'The imputation server refused the credentials. Check or renew your token for this service in Settings.'],
    [/chr.*prefix|chromosome name|contig/, 'The chromosome names do not match the build: hg19 expects no "chr" prefix, hg38 expects "chr".'],
    [/build|hg19|hg38|grch/, 'The genome build of the file does not match the chosen reference panel.'],
    [/sample/, 'The number of samples is outside what the server accepts.'],
    [/timeout|timed out|connection|unreachable|503|502|504/, 'The imputation server could not be reached for a while. The platform retries on its own.'],
    [/quota|limit/, 'A quota or size limit was reached on the imputation server.'],
    [/too many chromosomes|one chromosome|multiple chromosomes/, 'The server wants one chromosome per file. Split the VCF by chromosome and submit again.'],
  ];
  for (const [pattern, explanation] of rules) if (pattern.test(text)) return explanation;
  return null;
}
