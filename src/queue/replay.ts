/**
 * What "the same request" means for an idempotency key: the same task name and the same input,
 * compared as canonical JSON (object keys sorted, so `{a,b}` and `{b,a}` match, and values as JSON
 * keeps them: `undefined` fields are absent). Options such as priority or timeout are not compared:
 * they shape how the task runs, not what it does. A repeat with a different input is a client bug
 * (a reused key), answered IDEMPOTENCY_CONFLICT, as Stripe and the IETF Idempotency-Key draft do.
 */
import { TaskloomError } from '../errors.js'

/** JSON with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value === undefined ? null : value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    // No prototype, so a `__proto__` key stays a key.
    const sorted: Record<string, unknown> = Object.create(null)
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k]
    return sorted
  })
}

export interface Submitted {
  name: string
  input: unknown
}

export function samePayload(a: Submitted, b: Submitted): boolean {
  return a.name === b.name && canonicalJson(a.input) === canonicalJson(b.input)
}

/** A schedule named by an idempotency key is the same request when its task, cron and input are. */
export function sameSchedule(
  stored: { taskName: string; cron: string; input: unknown },
  asked: { name: string; cron: string; input: unknown },
): boolean {
  return (
    stored.taskName === asked.name &&
    stored.cron === asked.cron.trim() &&
    canonicalJson(stored.input) === canonicalJson(asked.input)
  )
}

/** The error for a key reused with another payload; `path` names the key's field. */
export function idempotencyConflict(key: string, existingId: string, path: string): TaskloomError {
  return new TaskloomError(
    'IDEMPOTENCY_CONFLICT',
    `idempotency key ${JSON.stringify(key)} was used for task ${existingId} with a different task name or input; use a new key for a different request`,
    { issues: [{ path, message: `already used with another payload (task ${existingId})` }] },
  )
}
