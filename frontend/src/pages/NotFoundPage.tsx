import { Link as RouterLink } from 'react-router-dom';
import Link from '@mui/material/Link';
import Typography from '@mui/material/Typography';
import { PageHeading } from '../components/PageHeading';

export default function NotFoundPage() {
  return (
    <>
      <PageHeading title="Page not found" />
      <Typography>
        There is nothing at this address. Go to the{' '}
        <Link component={RouterLink} to="/">
          dashboard
        </Link>
        .
      </Typography>
    </>
  );
}
