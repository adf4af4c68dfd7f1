import { useRef, useState } from 'react';
import Alert from '@mui/material/Alert';
import Box from '@mui/material/Box';
import Button from '@mui/material/Button';
import LinearProgress from '@mui/material/LinearProgress';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import Typography from '@mui/material/Typography';
import { errorMessage, files, type UploadedFile } from '../api';
import { formatBytes } from '../format';
import { useFeedback, visuallyHidden } from './Feedback';

export interface UploadItem {
  key: string;
  name: string;
  size: number;
  progress: number;
  state: 'uploading' | 'done' | 'failed' | 'cancelled';
  error?: string;
  result?: UploadedFile;
  cancel?: () => void;
  /** A pre-flight problem with this file, from the form or the server. */
  problem?: string;
}

interface FileUploaderProps {
  items: UploadItem[];
  onChange: (update: (items: UploadItem[]) => UploadItem[]) => void;
}

/** Uploads each chosen VCF at once, with its own progress bar and cancel button, and shows what was found in it. */
export function FileUploader({ items, onChange }: FileUploaderProps) {
  const input = useRef<HTMLInputElement>(null);
  const feedback = useFeedback();
  const [dragging, setDragging] = useState(false);

  const patch = (key: string, changes: Partial<UploadItem>) =>
    onChange((list) => list.map((item) => (item.key === key ? { ...item, ...changes } : item)));

  const start = (chosen: FileList | null) => {
    for (const file of Array.from(chosen ?? [])) {
      const key = `${file.name}-${file.size}-${Date.now()}-${Math.random()}`;
      const handle = files.upload(file, (fraction) => patch(key, { progress: Math.round(fraction * 100) }));
      onChange((list) => [
        ...list,
        { key, name: file.name, size: file.size, progress: 0, state: 'uploading', cancel: handle.cancel },
      ]);
      handle.promise.then(
        (result) => {
          patch(key, { state: 'done', progress: 100, result, cancel: undefined });
          feedback.announce(`${file.name} uploaded.`);
        },
        (error: unknown) => {
          const cancelled = error instanceof DOMException && error.name === 'AbortError';
          patch(key, { state: cancelled ? 'cancelled' : 'failed', error: cancelled ? undefined : errorMessage(error), cancel: undefined });
          feedback.announce(cancelled ? `Upload of ${file.name} cancelled.` : `Upload of ${file.name} failed.`);
        },
      );
    }
    if (input.current) input.current.value = '';
  };

  return (
    <Box>
      <Box
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          start(e.dataTransfer.files);
        }}
        sx={{
          border: '2px dashed',
          borderColor: dragging ? 'primary.main' : 'divider',
          borderRadius: 1,
          p: 2,
          textAlign: 'center',
        }}
      >
        <input
          ref={input}
          id="vcf-input"
          type="file"
          multiple
          accept=".vcf,.vcf.gz,.gz,.bgz"
          aria-label="VCF files"
          tabIndex={-1}
          onChange={(e) => start(e.target.files)}
          style={visuallyHidden}
        />
        <Button variant="outlined" onClick={() => input.current?.click()}>
          Choose VCF files
        </Button>
        <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
          or drop them here. Bgzipped VCF (.vcf.gz), one chromosome per file for Michigan servers.
        </Typography>
      </Box>
      <List aria-label="Uploaded files">
        {items.map((item) => (
          <ListItem key={item.key} divider sx={{ display: 'block' }}>
            <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, flexWrap: 'wrap' }}>
              <Typography sx={{ flexGrow: 1, wordBreak: 'break-all' }}>
                {item.name} <Typography component="span" variant="body2" color="text.secondary">({formatBytes(item.size)})</Typography>
              </Typography>
              {item.state === 'uploading' ? (
                <Button size="small" onClick={item.cancel} aria-label={`Cancel upload of ${item.name}`}>
                  Cancel
                </Button>
              ) : (
                <Button
                  size="small"
                  onClick={() => onChange((list) => list.filter((i) => i.key !== item.key))}
                  aria-label={`Remove ${item.name}`}
                >
                  Remove
                </Button>
              )}
            </Box>
            {item.state === 'uploading' && (
              <LinearProgress variant="determinate" value={item.progress} aria-label={`Uploading ${item.name}`} />
            )}
            {item.state === 'failed' && (
              <Alert severity="error" sx={{ mt: 1 }}>
                {item.error}
              </Alert>
            )}
            {item.state === 'cancelled' && (
              <Typography variant="body2" color="text.secondary">
                Upload cancelled.
              </Typography>
            )}
            {item.result?.vcf && (
              <Typography variant="body2" color="text.secondary">
                {item.result.vcf.sample_count} samples · chromosomes {item.result.vcf.chromosomes.join(', ') || '—'} ·
                build hint {item.result.vcf.build_hint ?? 'none'} · {item.result.vcf.phased ? 'phased' : 'unphased'}
              </Typography>
            )}
            {item.result?.vcf?.warnings.map((w) => (
              <Alert key={w} severity="warning" sx={{ mt: 0.5 }}>
                {w}
              </Alert>
            ))}
            {item.problem && (
              <Alert severity="error" sx={{ mt: 0.5 }} role="alert">
                {item.problem}
              </Alert>
            )}
          </ListItem>
        ))}
      </List>
    </Box>
  );
}
