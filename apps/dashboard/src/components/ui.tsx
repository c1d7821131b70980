import { useRef, useState, type ReactNode } from 'react';
import { ApiError } from '../api/client';

/** An error in the project's error shape: code, message, correlation id, details (e.g. the bad lines). */
export function ErrorView({ error }: { error: unknown }) {
  const body = error instanceof ApiError ? error.body : { statusCode: 0, code: 'client', message: error instanceof Error ? error.message : String(error) };
  return (
    <div className="error" role="alert">
      <strong>{body.message}</strong>
      <div className="muted">
        <code>{body.code}</code>
        {body.statusCode ? ` · HTTP ${body.statusCode}` : ''}
        {'correlationId' in body && body.correlationId ? ` · correlation id ${body.correlationId}` : ''}
      </div>
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return <p className="muted" role="status">Loading {what}…</p>;
}

/** An empty state that says what to do next. */
export function Empty({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="empty">
      <h3>{title}</h3>
      {children}
    </section>
  );
}

/** What a query hook gives, shown as loading, error or content. */
export function Async<T>({ q, what, children }: { q: { data?: T; error: unknown; isPending: boolean }; what: string; children: (d: T) => ReactNode }) {
  if (q.error) return <ErrorView error={q.error} />;
  if (q.isPending || q.data === undefined) return <Loading what={what} />;
  return <>{children(q.data)}</>;
}

/**
 * A button that opens a confirmation naming exactly what will happen, with an
 * optional reason field; the action runs only on "confirm".
 */
export function ConfirmButton({
  label,
  title,
  consequence,
  confirmLabel,
  reason,
  danger,
  onConfirm,
}: {
  label: string;
  title: string;
  consequence: ReactNode;
  confirmLabel: string;
  reason?: boolean;
  danger?: boolean;
  onConfirm(reason: string): Promise<unknown>;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const close = () => {
    ref.current?.close();
    setText('');
    setError(null);
  };
  return (
    <>
      <button type="button" className={danger ? 'danger' : undefined} onClick={() => ref.current?.showModal()}>
        {label}
      </button>
      <dialog ref={ref} aria-label={title} onClose={() => setError(null)}>
        <h2>{title}</h2>
        <div className="consequence">{consequence}</div>
        {reason && (
          <label>
            Reason (recorded in the audit log)
            <input value={text} onChange={(e) => setText(e.target.value)} maxLength={500} />
          </label>
        )}
        {error !== null && <ErrorView error={error} />}
        <div className="row">
          <button type="button" onClick={close}>Cancel</button>
          <button
            type="button"
            className={danger ? 'danger' : 'primary'}
            disabled={busy}
            onClick={() => {
              setBusy(true);
              onConfirm(text)
                .then(close, setError)
                .finally(() => setBusy(false));
            }}
          >
            {confirmLabel}
          </button>
        </div>
      </dialog>
    </>
  );
}

export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">—</span>;
  const d = new Date(at);
  return <time dateTime={at} title={d.toISOString()}>{d.toLocaleString()}</time>;
}

export function Badge({ tone, children }: { tone: 'ok' | 'warn' | 'bad' | 'info' | 'idle'; children: ReactNode }) {
  return <span className={`badge ${tone}`}>{children}</span>;
}
