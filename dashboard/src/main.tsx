import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { RouterProvider } from './router';
import { applyTheme, storedTheme } from './theme';
import './styles.css';

applyTheme(storedTheme());
// Follow the system's light or dark setting while the person has not chosen one.
// Keep the MediaQueryList referenced: Chromium drops listeners of one that is collected.
const systemDark = window.matchMedia?.('(prefers-color-scheme: dark)');
systemDark?.addEventListener?.('change', () => {
  if (storedTheme() === 'system') applyTheme('system');
});
(window as Window & { routerlySystemDark?: MediaQueryList }).routerlySystemDark = systemDark;

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <RouterProvider>
      <App />
    </RouterProvider>
  </StrictMode>,
);
