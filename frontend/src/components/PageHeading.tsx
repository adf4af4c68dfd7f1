import { useEffect, useRef, type ReactNode } from 'react';
import Box from '@mui/material/Box';
import Typography from '@mui/material/Typography';

/**
 * The page's one h1. It takes focus when the page opens, so a screen reader announces the new page after
 * client-side navigation, and it sets the document title.
 */
export function PageHeading({ title, actions }: { title: string; actions?: ReactNode }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Federated Imputation`;
    ref.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <Box sx={{ display: 'flex', flexWrap: 'wrap', alignItems: 'center', gap: 2, mb: 2 }}>
      <Typography
        variant="h4"
        component="h1"
        ref={ref}
        tabIndex={-1}
        sx={{ flexGrow: 1, fontSize: { xs: '1.6rem', sm: '2rem' }, outline: 'none' }}
      >
        {title}
      </Typography>
      {actions}
    </Box>
  );
}
