/** Racing a promise against a deadline, without leaving the timer behind. */

/** What `orTimeout` answers when the deadline came first. */
export const TIMED_OUT: unique symbol = Symbol('timed out')

/**
 * Settles like `work`, or with `TIMED_OUT` once `ms` have passed, whichever comes first. `work`
 * goes on either way; the timer is cleared as soon as the race is decided.
 */
export function orTimeout<T>(work: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms)
  })
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer))
}
