import { createTheme } from '@mui/material/styles';

// Colours chosen for WCAG AA contrast on white; focus rings are left visible.
export const theme = createTheme({
  palette: {
    primary: { main: '#1565c0' },
    secondary: { main: '#6a1b9a' },
    success: { main: '#2e7d32' },
    error: { main: '#c62828' },
  },
  components: {
    MuiButtonBase: { defaultProps: { disableRipple: false } },
    MuiTableCell: { styleOverrides: { head: { fontWeight: 600 } } },
  },
});
