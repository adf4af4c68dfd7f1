// Two small SVG charts, enough for health history and statistics without a charting library in the bundle.
import Box from '@mui/material/Box';
import Typography from '@mui/material/Typography';

export interface Point {
  at: string;
  value: number | null;
  ok: boolean;
}

/** Response time over time; failed checks drawn as red marks at the baseline. */
export function HealthHistoryChart({ points, label }: { points: Point[]; label: string }) {
  const width = 600;
  const height = 160;
  const values = points.map((p) => p.value ?? 0);
  const max = Math.max(1, ...values);
  const step = points.length > 1 ? width / (points.length - 1) : 0;
  const y = (v: number) => height - 10 - (v / max) * (height - 20);
  const line = points
    .map((p, i) => `${i === 0 ? 'M' : 'L'}${(i * step).toFixed(1)},${y(p.value ?? 0).toFixed(1)}`)
    .join(' ');
  const failures = points.filter((p) => !p.ok).length;
  const summary = `${label}: ${points.length} checks, ${failures} failed, slowest ${Math.round(max)} ms.`;
  return (
    <Box>
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" height={height} role="img" aria-label={summary}>
        <path d={line} fill="none" stroke="#1976d2" strokeWidth={2} />
        {points.map((p, i) =>
          p.ok ? null : <rect key={i} x={i * step - 2} y={height - 10} width={4} height={10} fill="#d32f2f" />,
        )}
      </svg>
      <Typography variant="caption" color="text.secondary">
        {summary}
      </Typography>
    </Box>
  );
}

/** Horizontal bars with their numbers written out. */
export function BarList({ data, label }: { data: { name: string; value: number }[]; label: string }) {
  const max = Math.max(1, ...data.map((d) => d.value));
  return (
    <Box component="ul" aria-label={label} sx={{ listStyle: 'none', p: 0, m: 0 }}>
      {data.map((d) => (
        <Box component="li" key={d.name} sx={{ display: 'flex', alignItems: 'center', gap: 1, mb: 0.5 }}>
          <Typography variant="body2" sx={{ width: 110, flexShrink: 0 }}>
            {d.name}
          </Typography>
          <Box sx={{ flexGrow: 1, bgcolor: 'action.hover', borderRadius: 1 }}>
            <Box sx={{ width: `${(d.value / max) * 100}%`, height: 12, bgcolor: 'primary.main', borderRadius: 1 }} />
          </Box>
          <Typography variant="body2" sx={{ width: 48, textAlign: 'right' }}>
            {d.value}
          </Typography>
        </Box>
      ))}
    </Box>
  );
}
