/**
 * Idle workers parked in `waitForWork`: each resolves on `wakeAll`, on its timeout or when its
 * signal aborts, whichever comes first, and never rejects. Settling clears its timer and listener.
 */
/** setTimeout's ceiling; a longer delay would fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647

export class Waiters {
  private readonly parked = new Set<() => void>()

  wait(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        this.parked.delete(done)
        resolve()
      }
      const timer = setTimeout(done, Math.min(Math.max(0, timeoutMs), MAX_TIMEOUT_MS))
      signal.addEventListener('abort', done, { once: true })
      this.parked.add(done)
    })
  }

  wakeAll(): void {
    for (const done of [...this.parked]) done()
  }
}
