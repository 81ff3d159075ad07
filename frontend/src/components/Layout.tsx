import type { ReactNode } from 'react';
import { NavLink as RouterLink, useLocation } from 'react-router-dom';
import {
  ActionIcon,
  AppShell,
  Badge,
  Burger,
  Button,
  Group,
  NavLink,
  Text,
  Tooltip,
  useComputedColorScheme,
  useMantineColorScheme,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { clearToken } from '../api/auth';
import { useStreamStatus } from '../api/events';

const NAV = [
  { to: '/', label: 'Dashboard' },
  { to: '/datasets', label: 'Datasets' },
  { to: '/tools', label: 'Tools' },
  { to: '/env-configs', label: 'Env configs' },
  { to: '/experiments', label: 'Experiments' },
  { to: '/compare', label: 'Compare' },
];

function ThemeToggle() {
  const { setColorScheme } = useMantineColorScheme();
  const scheme = useComputedColorScheme('dark');
  return (
    <Tooltip label="Toggle light/dark">
      <ActionIcon
        variant="default"
        size="lg"
        aria-label="Toggle color scheme"
        data-testid="theme-toggle"
        onClick={() => setColorScheme(scheme === 'dark' ? 'light' : 'dark')}
      >
        {scheme === 'dark' ? '☀' : '☾'}
      </ActionIcon>
    </Tooltip>
  );
}

const STREAM_COLORS = { open: 'green', connecting: 'yellow', closed: 'red', off: 'gray' } as const;

export function Layout({ children }: { children: ReactNode }) {
  const [opened, { toggle }] = useDisclosure();
  const location = useLocation();
  const stream = useStreamStatus();
  return (
    <AppShell header={{ height: 52 }} navbar={{ width: 200, breakpoint: 'sm', collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Group>
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" />
            <Text fw={700}>tradelab</Text>
          </Group>
          <Group gap="xs">
            <Tooltip label="Live updates (server-sent events)">
              <Badge color={STREAM_COLORS[stream]} variant="dot" data-testid="stream-status">
                live: {stream}
              </Badge>
            </Tooltip>
            <ThemeToggle />
            <Button variant="subtle" size="xs" onClick={() => clearToken()} data-testid="logout">
              Forget token
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" data-testid="nav">
        {NAV.map((item) => (
          <NavLink
            key={item.to}
            component={RouterLink}
            to={item.to}
            label={item.label}
            active={item.to === '/' ? location.pathname === '/' : location.pathname.startsWith(item.to)}
            data-testid={`nav-${item.label.toLowerCase().replace(/\s+/g, '-')}`}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}
