import { createTheme } from '@mui/material/styles';

// Under Vitest, ripples and transitions only cost time (jsdom draws nothing), so tests turn them off.
const testing = import.meta.env.MODE === 'test';

// Colours chosen for WCAG AA contrast on white; focus rings are left visible.
export const theme = createTheme({
  palette: {
    primary: { main: '#1565c0' },
    secondary: { main: '#6a1b9a' },
    success: { main: '#2e7d32' },
    error: { main: '#c62828' },
    // MUI's default orange (#ed6c02) gives white text 3.1:1; this one passes AA.
    warning: { main: '#a84300' },
  },
  ...(testing && { transitions: { create: () => 'none', duration: { enteringScreen: 0, leavingScreen: 0 } } }),
  components: {
    MuiButtonBase: { defaultProps: { disableRipple: testing } },
    MuiTableCell: { styleOverrides: { head: { fontWeight: 600 } } },
  },
});
