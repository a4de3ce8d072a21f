import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, request, type RequestOptions } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

/** GETs `path` (null: nothing yet) and reloads when the path or query changes. */
export function useApi<T>(path: string | null, query?: RequestOptions['query']): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(path !== null);
  const [generation, setGeneration] = useState(0);
  const queryKey = JSON.stringify(query ?? {});
  useEffect(() => {
    if (path === null) return;
    const controller = new AbortController();
    setLoading(true);
    request<T>(path, { query: JSON.parse(queryKey), signal: controller.signal })
      .then((value) => {
        setData(value);
        setError(null);
      })
      .catch((reason: unknown) => {
        if ((reason as Error).name === 'AbortError') return;
        setError(reason instanceof ApiError ? reason : new ApiError(0, 'client', String(reason)));
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
  }, [path, queryKey, generation]);
  const reload = useCallback(() => setGeneration((value) => value + 1), []);
  return { data, error, loading, reload };
}

/** Runs an action, keeping its pending state and its error for the form that started it. */
export function useAction() {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const run = useCallback(async <T,>(action: () => Promise<T>): Promise<T | undefined> => {
    setPending(true);
    setError(null);
    try {
      return await action();
    } catch (reason) {
      if (mounted.current) setError(reason instanceof ApiError ? reason : new ApiError(0, 'client', String(reason)));
      return undefined;
    } finally {
      if (mounted.current) setPending(false);
    }
  }, []);
  return { pending, error, run, setError };
}
