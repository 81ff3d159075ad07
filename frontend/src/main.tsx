import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router-dom';
import '@mantine/core/styles.css';
import '@mantine/notifications/styles.css';
import '@mantine/dates/styles.css';
import './styles.css';
import { App, makeQueryClient } from './App';
import { prefetchForPath, prefetchWhenIdle } from './prefetch';


const client = makeQueryClient();
prefetchForPath(client, window.location.pathname);
prefetchWhenIdle(client, window.location.pathname);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <BrowserRouter>
      <App client={client} />
    </BrowserRouter>
  </StrictMode>,
);
