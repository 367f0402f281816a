/** Exponential backoff with jitter: base, 2×base, 4×base ... capped at `maxMs`. */
export interface BackoffOptions {
  /** First retry delay. Default 1,000 ms. */
  baseMs?: number
  /** Cap. Default 300,000 ms (5 minutes). */
  maxMs?: number
  /** Fraction of each delay that is random (0-1): 0.2 means 80-100% of it. Default 0.2. */
  jitter?: number
}

export const BACKOFF_DEFAULTS: Required<BackoffOptions> = { baseMs: 1000, maxMs: 300_000, jitter: 0.2 }

/** Delay before retry number `attempt` (1 after the first failure). */
export function backoffDelay(
  attempt: number,
  options: Required<BackoffOptions>,
  random = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 40)
  const delay = Math.min(options.maxMs, options.baseMs * 2 ** exponent)
  return Math.round(delay * (1 - options.jitter * random()))
}
