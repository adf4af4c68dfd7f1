import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { NavLink, Outlet, useLocation, useNavigate } from 'react-router-dom';
import AppBar from '@mui/material/AppBar';
import Badge from '@mui/material/Badge';
import Box from '@mui/material/Box';
import Drawer from '@mui/material/Drawer';
import IconButton from '@mui/material/IconButton';
import Link from '@mui/material/Link';
import List from '@mui/material/List';
import ListItem from '@mui/material/ListItem';
import ListItemButton from '@mui/material/ListItemButton';
import ListItemText from '@mui/material/ListItemText';
import ListSubheader from '@mui/material/ListSubheader';
import Menu from '@mui/material/Menu';
import MenuItem from '@mui/material/MenuItem';
import Toolbar from '@mui/material/Toolbar';
import Tooltip from '@mui/material/Tooltip';
import Typography from '@mui/material/Typography';
import useMediaQuery from '@mui/material/useMediaQuery';
import { useTheme } from '@mui/material/styles';
import { notifications as notificationsApi, type Notification } from '../api';
import { useAuth } from '../auth/AuthContext';
import { useInterval } from '../hooks/useAsync';
import { useNotificationSocket } from '../hooks/useNotificationSocket';
import { useFeedback } from './Feedback';
import { AccountIcon, BellIcon, MenuIcon } from './icons';

const DRAWER_WIDTH = 220;

export function SkipLink() {
  return (
    <Link
      href="#main"
      onClick={(event) => {
        event.preventDefault();
        document.getElementById('main')?.focus();
      }}
      sx={{
        position: 'absolute',
        left: 8,
        top: -48,
        zIndex: 2000,
        p: 1,
        bgcolor: 'background.paper',
        '&:focus': { top: 8 },
      }}
    >
      Skip to main content
    </Link>
  );
}

function NavItem({ to, children, onClick }: { to: string; children: ReactNode; onClick: () => void }) {
  return (
    <ListItem disablePadding>
      <ListItemButton
        component={NavLink}
        to={to}
        end={to === '/'}
        onClick={onClick}
        sx={{ '&.active': { bgcolor: 'action.selected', fontWeight: 600 } }}
      >
        <ListItemText primary={children} />
      </ListItemButton>
    </ListItem>
  );
}

/** Unread count in the top bar, kept live by the WebSocket (and a slow poll as a safety net). */
export function NotificationBell() {
  const [count, setCount] = useState<number | null>(null);
  const feedback = useFeedback();
  const refresh = useCallback(() => {
    notificationsApi.unreadCount().then(
      (answer) => setCount(answer.unread),
      () => undefined,
    );
  }, []);
  useEffect(refresh, [refresh]);
  useInterval(refresh, 60000);
  useNotificationSocket(
    useCallback(
      (notification: Notification) => {
        setCount((c) => (c ?? 0) + 1);
        feedback.info(notification.title);
        window.dispatchEvent(new CustomEvent('fi:notification', { detail: notification }));
      },
      [feedback],
    ),
    true,
    refresh,
  );
  const label = count ? `Notifications, ${count} unread` : 'Notifications';
  return (
    <Tooltip title={label}>
      <IconButton color="inherit" component={NavLink} to="/notifications" aria-label={label}>
        <Badge badgeContent={count ?? 0} color="error" max={99}>
          <BellIcon />
        </Badge>
      </IconButton>
    </Tooltip>
  );
}

export function Layout() {
  const { user, isAdmin, logout } = useAuth();
  const [mobileOpen, setMobileOpen] = useState(false);
  const [menuAnchor, setMenuAnchor] = useState<HTMLElement | null>(null);
  const navigate = useNavigate();
  const location = useLocation();
  const close = () => setMobileOpen(false);
  const theme = useTheme();
  // One navigation in the page at a time: a permanent drawer on wide screens, a modal one on phones.
  const wide = useMediaQuery(theme.breakpoints.up('md'), { noSsr: true });

  useEffect(() => setMobileOpen(false), [location.pathname]);

  const nav = (
    <Box component="nav" aria-label="Main">
      <List>
        <NavItem to="/" onClick={close}>Dashboard</NavItem>
        <NavItem to="/jobs/new" onClick={close}>New job</NavItem>
        <NavItem to="/jobs" onClick={close}>Jobs</NavItem>
        <NavItem to="/services" onClick={close}>Services</NavItem>
        <NavItem to="/notifications" onClick={close}>Notifications</NavItem>
        <NavItem to="/settings" onClick={close}>Settings</NavItem>
      </List>
      {isAdmin && (
        <List subheader={<ListSubheader>Admin</ListSubheader>}>
          <NavItem to="/admin/users" onClick={close}>Users</NavItem>
          <NavItem to="/admin/audit" onClick={close}>Audit log</NavItem>
          <NavItem to="/admin/monitoring" onClick={close}>Monitoring</NavItem>
          <ListItem disablePadding>
            <ListItemButton component="a" href="/admin/">
              <ListItemText primary="Services & panels (Django admin)" />
            </ListItemButton>
          </ListItem>
        </List>
      )}
    </Box>
  );

  return (
    <Box sx={{ display: 'flex', minHeight: '100vh' }}>
      <SkipLink />
      <AppBar position="fixed" sx={{ zIndex: (theme) => theme.zIndex.drawer + 1 }}>
        <Toolbar>
          <IconButton
            color="inherit"
            edge="start"
            aria-label="Open navigation"
            aria-expanded={mobileOpen}
            onClick={() => setMobileOpen(true)}
            sx={{ mr: 1, display: wide ? 'none' : 'inline-flex' }}
          >
            <MenuIcon />
          </IconButton>
          <Typography variant="h6" component="div" sx={{ flexGrow: 1 }} noWrap>
            Federated Imputation
          </Typography>
          <NotificationBell />
          <IconButton
            color="inherit"
            aria-label={`Account menu for ${user?.username ?? ''}`}
            aria-haspopup="menu"
            onClick={(event) => setMenuAnchor(event.currentTarget)}
          >
            <AccountIcon />
          </IconButton>
          <Menu anchorEl={menuAnchor} open={menuAnchor !== null} onClose={() => setMenuAnchor(null)}>
            <MenuItem disabled>Signed in as {user?.username}</MenuItem>
            <MenuItem
              onClick={() => {
                setMenuAnchor(null);
                navigate('/settings');
              }}
            >
              Settings
            </MenuItem>
            <MenuItem
              onClick={() => {
                setMenuAnchor(null);
                void logout().then(() => navigate('/login', { state: { signedOut: true } }));
              }}
            >
              Sign out
            </MenuItem>
          </Menu>
        </Toolbar>
      </AppBar>
      {wide ? (
      <Drawer
        variant="permanent"
        sx={{
          width: DRAWER_WIDTH,
          flexShrink: 0,
          '& .MuiDrawer-paper': { width: DRAWER_WIDTH, boxSizing: 'border-box' },
        }}
        open
      >
        <Toolbar />
        {nav}
      </Drawer>
      ) : (
      <Drawer
        variant="temporary"
        open={mobileOpen}
        onClose={close}
        sx={{ '& .MuiDrawer-paper': { width: DRAWER_WIDTH } }}
      >
        {nav}
      </Drawer>
      )}
      <Box
        component="main"
        id="main"
        tabIndex={-1}
        sx={{ flexGrow: 1, p: { xs: 2, sm: 3 }, minWidth: 0, outline: 'none' }}
      >
        <Toolbar />
        <Outlet />
      </Box>
    </Box>
  );
}
