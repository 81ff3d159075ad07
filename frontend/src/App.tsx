import { Suspense, lazy, useEffect, useState, useSyncExternalStore, type ReactNode } from 'react';
import { Route, Routes } from 'react-router-dom';
import { MantineProvider, createTheme, localStorageColorSchemeManager } from '@mantine/core';
import { Notifications } from '@mantine/notifications';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { getAuthReason, getToken, subscribeToken } from './api/auth';
import { ApiError } from './api/client';
import { EventsProvider } from './api/events';
import { Layout } from './components/Layout';
import { TokenPrompt } from './components/TokenPrompt';
import { Loading } from './components/common';
import { DashboardPage } from './pages/Dashboard';
import { ExperimentsPage } from './pages/Experiments';
import { NotFoundPage } from './pages/NotFound';

// Pages with charts or forms load on demand (lightweight-charts and rjsf/ajv stay out of the first load).
const DatasetsPage = lazy(() => import('./pages/Datasets').then((m) => ({ default: m.DatasetsPage })));
const DatasetDetailPage = lazy(() => import('./pages/Datasets').then((m) => ({ default: m.DatasetDetailPage })));
const ToolsPage = lazy(() => import('./pages/Tools').then((m) => ({ default: m.ToolsPage })));
const ToolDetailPage = lazy(() => import('./pages/Tools').then((m) => ({ default: m.ToolDetailPage })));
const EnvConfigsPage = lazy(() => import('./pages/EnvConfigs').then((m) => ({ default: m.EnvConfigsPage })));
const EnvConfigEditorPage = lazy(() => import('./pages/EnvConfigs').then((m) => ({ default: m.EnvConfigEditorPage })));
const ExperimentDetailPage = lazy(() =>
  import('./pages/ExperimentDetail').then((m) => ({ default: m.ExperimentDetailPage })),
);
const RunPage = lazy(() => import('./pages/RunPage').then((m) => ({ default: m.RunPage })));
const ComparePage = lazy(() => import('./pages/Compare').then((m) => ({ default: m.ComparePage })));

export const theme = createTheme({ primaryColor: 'blue', defaultRadius: 'sm' });
export const colorSchemeManager = localStorageColorSchemeManager({ key: 'tradelab.color-scheme' });

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 10_000,
        refetchOnWindowFocus: false,
        retry: (count, error) => !(error instanceof ApiError && error.status < 500) && count < 2,
      },
      mutations: { retry: false },
    },
  });
}

function useToken(): string | null {
  return useSyncExternalStore(subscribeToken, getToken, getToken);
}

export function AppRoutes() {
  return (
    <Suspense fallback={<Loading />}>
    <Routes>
      <Route path="/" element={<DashboardPage />} />
      <Route path="/datasets" element={<DatasetsPage />} />
      <Route path="/datasets/:id" element={<DatasetDetailPage />} />
      <Route path="/tools" element={<ToolsPage />} />
      <Route path="/tools/:name" element={<ToolDetailPage />} />
      <Route path="/env-configs" element={<EnvConfigsPage />} />
      <Route path="/env-configs/new" element={<EnvConfigEditorPage />} />
      <Route path="/env-configs/:name" element={<EnvConfigEditorPage />} />
      <Route path="/experiments" element={<ExperimentsPage />} />
      <Route path="/experiments/:id" element={<ExperimentDetailPage />} />
      <Route path="/runs/:id" element={<RunPage />} />
      <Route path="/compare" element={<ComparePage />} />
      <Route path="*" element={<NotFoundPage />} />
    </Routes>
    </Suspense>
  );
}

/** The token gate: the prompt while there is no token (or after a 401), else the app. */
function Gate({ client, children }: { client: QueryClient; children: ReactNode }) {
  const token = useToken();
  useEffect(() => {
    if (!token) client.clear();
  }, [token, client]);
  if (!token) return <TokenPrompt reason={getAuthReason()} />;
  return <EventsProvider token={token}>{children}</EventsProvider>;
}

/** Everything under a router (BrowserRouter in main.tsx, MemoryRouter in tests). */
export function App({ client }: { client?: QueryClient }) {
  const [queryClient] = useState(() => client ?? makeQueryClient());
  return (
    <MantineProvider theme={theme} defaultColorScheme="dark" colorSchemeManager={colorSchemeManager}>
      <Notifications position="top-right" />
      <QueryClientProvider client={queryClient}>
        <Gate client={queryClient}>
          <Layout>
            <AppRoutes />
          </Layout>
        </Gate>
      </QueryClientProvider>
    </MantineProvider>
  );
}
