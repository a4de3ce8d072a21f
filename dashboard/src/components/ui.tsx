// The building blocks every page uses: fields with their error, states for loading, empty
// and failed, tabs with arrow-key navigation, a confirmation dialog, a one-time secret box.

import {
  useEffect,
  useId,
  useRef,
  useState,
  type ComponentProps,
  type InputHTMLAttributes,
  type KeyboardEvent,
  type ReactNode,
  type SelectHTMLAttributes,
  type TextareaHTMLAttributes,
} from 'react';
import type { ApiError } from '../api';
import { Link } from '../router';

export function Button({
  variant = 'secondary',
  busy = false,
  children,
  ...rest
}: { variant?: 'primary' | 'secondary' | 'danger' | 'ghost'; busy?: boolean } & ComponentProps<'button'>) {
  return (
    <button type="button" className={`button button-${variant}`} disabled={busy || rest.disabled} aria-busy={busy || undefined} {...rest}>
      {busy ? <span className="spinner" aria-hidden="true" /> : null}
      {children}
    </button>
  );
}

interface FieldProps {
  label: string;
  error?: string;
  hint?: ReactNode;
  children: (props: { id: string; 'aria-invalid'?: boolean; 'aria-describedby'?: string }) => ReactNode;
}

/** A label, the control, a hint and the field's error, wired for screen readers. */
export function Field({ label, error, hint, children }: FieldProps) {
  const id = useId();
  const described = [hint ? id + '-hint' : '', error ? id + '-error' : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div className={'field' + (error ? ' field-invalid' : '')}>
      <label htmlFor={id}>{label}</label>
      {children({ id, 'aria-invalid': error ? true : undefined, 'aria-describedby': described })}
      {hint ? (
        <div className="hint" id={id + '-hint'}>
          {hint}
        </div>
      ) : null}
      {error ? (
        <div className="field-error" id={id + '-error'} role="alert">
          {error}
        </div>
      ) : null}
    </div>
  );
}

export function TextField({
  label,
  error,
  hint,
  ...rest
}: { label: string; error?: string; hint?: ReactNode } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <Field label={label} error={error} hint={hint}>
      {(props) => <input {...props} {...rest} />}
    </Field>
  );
}

export function SelectField({
  label,
  error,
  hint,
  children,
  ...rest
}: { label: string; error?: string; hint?: ReactNode } & SelectHTMLAttributes<HTMLSelectElement>) {
  return (
    <Field label={label} error={error} hint={hint}>
      {(props) => (
        <select {...props} {...rest}>
          {children}
        </select>
      )}
    </Field>
  );
}

export function TextAreaField({
  label,
  error,
  hint,
  ...rest
}: { label: string; error?: string; hint?: ReactNode } & TextareaHTMLAttributes<HTMLTextAreaElement>) {
  return (
    <Field label={label} error={error} hint={hint}>
      {(props) => <textarea {...props} {...rest} />}
    </Field>
  );
}

export function Checkbox({ label, ...rest }: { label: ReactNode } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <label className="checkbox">
      <input type="checkbox" {...rest} />
      <span>{label}</span>
    </label>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {what}…
    </div>
  );
}

/** An error in words, with a retry when the caller can offer one. */
export function ErrorBox({ error, retry }: { error: ApiError | Error | string | null | undefined; retry?: () => void }) {
  if (!error) return null;
  const message = typeof error === 'string' ? error : error.message;
  return (
    <div className="state state-error" role="alert">
      <strong>Something went wrong:</strong> {message.charAt(0).toUpperCase() + message.slice(1)}
      {message.endsWith('.') ? '' : '.'}
      {retry ? (
        <>
          {' '}
          <Button variant="ghost" onClick={retry}>
            Try again
          </Button>
        </>
      ) : null}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <strong>{title}</strong>
      {children ? <div>{children}</div> : null}
    </div>
  );
}

export function Unavailable({ what, children }: { what: string; children?: ReactNode }) {
  return (
    <div className="state state-unavailable" data-testid="unavailable">
      <strong>{what} is not available yet.</strong>
      <div>
        This Routerly does not serve this part of the management API yet. {children}
      </div>
    </div>
  );
}

export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={'card ' + (className ?? '')}>
      {title || actions ? (
        <header className="card-header">
          {title ? <h2>{title}</h2> : <span />}
          {actions ? <div className="card-actions">{actions}</div> : null}
        </header>
      ) : null}
      {children}
    </section>
  );
}

export function PageHeader({ title, children }: { title: ReactNode; children?: ReactNode }) {
  return (
    <header className="page-header">
      <h1>{title}</h1>
      {children ? <div className="page-actions">{children}</div> : null}
    </header>
  );
}

/** A table that scrolls inside itself on narrow screens instead of widening the page. */
/**
 * A table that scrolls sideways inside its card when it is wider than the screen; then a
 * hint under it says so (and the cut edge is shaded), so no column is hidden silently.
 */
export function Table({ children, label, className }: { children: ReactNode; label: string; className?: string }) {
  const wrap = useRef<HTMLDivElement>(null);
  const [cut, setCut] = useState(false);
  useEffect(() => {
    const element = wrap.current;
    if (!element || typeof ResizeObserver === 'undefined') return;
    const measure = () => setCut(element.scrollWidth > element.clientWidth + 1);
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    if (element.firstElementChild) observer.observe(element.firstElementChild);
    return () => observer.disconnect();
  }, []);
  return (
    <>
      <div ref={wrap} className={['table-wrap', className, cut ? 'table-cut' : ''].filter(Boolean).join(' ')} tabIndex={0} role="region" aria-label={label}>
        <table>{children}</table>
      </div>
      {cut ? (
        <p className="table-hint muted small" data-testid="table-hint">
          Scroll the table sideways for more columns →
        </p>
      ) : null}
    </>
  );
}

export interface TabItem {
  id: string;
  label: string;
  to: string;
}

/** Links styled as tabs; Left/Right/Home/End move between them. */
export function Tabs({ items, active, label }: { items: TabItem[]; active: string; label: string }) {
  const refs = useRef<(HTMLAnchorElement | null)[]>([]);
  // On a narrow screen the tab row scrolls sideways: keep the active tab in view.
  const activeIndex = items.findIndex((item) => item.id === active);
  useEffect(() => {
    const element = refs.current[activeIndex];
    const row = element?.parentElement;
    if (!element || !row) return;
    const left = element.offsetLeft - row.offsetLeft;
    if (left < row.scrollLeft || left + element.offsetWidth > row.scrollLeft + row.clientWidth) {
      row.scrollLeft = Math.max(0, left - (row.clientWidth - element.offsetWidth) / 2);
    }
  }, [activeIndex]);
  const onKeyDown = (event: KeyboardEvent<HTMLElement>) => {
    const index = refs.current.findIndex((element) => element === document.activeElement);
    if (index < 0) return;
    const next =
      event.key === 'ArrowRight' ? (index + 1) % items.length
      : event.key === 'ArrowLeft' ? (index - 1 + items.length) % items.length
      : event.key === 'Home' ? 0
      : event.key === 'End' ? items.length - 1
      : -1;
    if (next >= 0) {
      event.preventDefault();
      refs.current[next]?.focus();
    }
  };
  return (
    <nav className="tabs" aria-label={label} onKeyDown={onKeyDown}>
      {items.map((item, index) => (
        <Link
          key={item.id}
          to={item.to}
          ref={(element: HTMLAnchorElement | null) => {
            refs.current[index] = element;
          }}
          className={'tab' + (item.id === active ? ' tab-active' : '')}
          aria-current={item.id === active ? 'page' : undefined}
        >
          {item.label}
        </Link>
      ))}
    </nav>
  );
}

/** Asks before something that cannot be undone; Escape or Cancel closes it. */
export function ConfirmButton({
  label,
  title,
  message,
  confirmLabel = 'Delete',
  onConfirm,
  variant = 'danger',
}: {
  label: ReactNode;
  title: string;
  message: ReactNode;
  confirmLabel?: string;
  onConfirm: () => Promise<unknown> | void;
  variant?: 'danger' | 'secondary' | 'ghost';
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const opener = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const titleId = useId();
  useEffect(() => {
    if (open) cancel.current?.focus();
  }, [open]);
  const close = () => {
    setOpen(false);
    opener.current?.focus();
  };
  return (
    <>
      <button type="button" ref={opener} className={`button button-${variant}`} onClick={() => setOpen(true)}>
        {label}
      </button>
      {open ? (
        <div className="modal-backdrop" onClick={close}>
          <div
            className="modal"
            role="alertdialog"
            aria-modal="true"
            aria-labelledby={titleId}
            onClick={(event) => event.stopPropagation()}
            onKeyDown={(event) => {
              if (event.key === 'Escape') close();
            }}
          >
            <h2 id={titleId}>{title}</h2>
            <div className="modal-body">{message}</div>
            <div className="modal-actions">
              <Button ref={cancel} onClick={close}>
                Cancel
              </Button>
              <Button
                variant="danger"
                busy={busy}
                onClick={async () => {
                  setBusy(true);
                  try {
                    await onConfirm();
                  } finally {
                    setBusy(false);
                    setOpen(false);
                  }
                }}
              >
                {confirmLabel}
              </Button>
            </div>
          </div>
        </div>
      ) : null}
    </>
  );
}

/** A secret shown once, right after it was created; it is gone when dismissed. */
export function SecretOnce({ secret, what, onDone }: { secret: string; what: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret-once" role="status" data-testid="secret-once">
      <p>
        <strong>Copy this {what} now.</strong> It is shown only this once; Routerly keeps only a hash of it.
      </p>
      <code className="secret" data-testid="secret-value">
        {secret}
      </code>
      <div className="row">
        <Button
          onClick={async () => {
            try {
              await navigator.clipboard.writeText(secret);
              setCopied(true);
            } catch {
              setCopied(false);
            }
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </Button>
        <Button variant="primary" onClick={onDone}>
          I have copied it
        </Button>
      </div>
    </div>
  );
}

export function Badge({ tone = 'neutral', children }: { tone?: 'neutral' | 'good' | 'warn' | 'bad'; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

export function outcomeTone(outcome: string): 'good' | 'warn' | 'bad' | 'neutral' {
  if (outcome === 'success') return 'good';
  if (outcome === 'cancelled' || outcome === 'budget_exceeded') return 'warn';
  return outcome === 'error' || outcome === 'timeout' ? 'bad' : 'neutral';
}

/** The server's error for one field, or the local check's. */
export function fieldError(errors: Record<string, string>, apiError: ApiError | null, field: string, apiField = field): string | undefined {
  if (errors[field]) return errors[field];
  if (apiError && apiError.field === apiField) return apiError.message;
  return undefined;
}

/** The server's error when it names no field that the form shows. */
export function FormError({ error, fields = [] }: { error: ApiError | null; fields?: string[] }) {
  if (!error || (error.field && fields.includes(error.field))) return null;
  return <ErrorBox error={error} />;
}
