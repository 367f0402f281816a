/**
 * What the API makes of a backend that is down: the failure a request met is reported as the
 * retryable BROKER_UNAVAILABLE or STORE_UNAVAILABLE (503 with Retry-After), whichever layer it came
 * from (the queue maps its own; API keys, audit and rate limits reach PostgreSQL and Redis directly),
 * and the outage is logged once when it begins and once when requests are served again, not once
 * per request.
 */
import { TaskloomError } from '../errors.js'
import { type Logger, logEnabled } from '../logger.js'

export { unavailable } from '../util/unavailable.js'

/** Logs each backend's outage once at WARN, and its end once at INFO. */
export class OutageLog {
  /** Outages (by error code) seen since requests were last served. */
  private readonly open = new Map<string, number>()

  constructor(private readonly logger: Logger) {}

  /** A request answered 5xx with `err`. */
  failed(err: unknown, requestId: string, route: string): void {
    const code = err instanceof TaskloomError ? err.code : undefined
    if (code !== 'BROKER_UNAVAILABLE' && code !== 'STORE_UNAVAILABLE') {
      this.logger.error({ err, requestId, route }, 'request failed')
      return
    }
    if (!this.open.has(code)) {
      this.open.set(code, Date.now())
      // Redis' connection logs its own loss; PostgreSQL's is logged here.
      const level = code === 'BROKER_UNAVAILABLE' ? 'info' : 'warn'
      this.logger[level](
        { err, requestId, route, code },
        `requests answer 503: ${code === 'BROKER_UNAVAILABLE' ? 'Redis' : 'PostgreSQL'} is unavailable`,
      )
    } else if (logEnabled(this.logger, 'debug')) {
      this.logger.debug({ err, requestId, route, code }, 'request failed: backend unavailable')
    }
  }

  /** A request was served (below 500): every outage seen is over. */
  served(): void {
    if (this.open.size === 0) return
    for (const [code, since] of this.open) {
      this.logger.info(
        { code, down_ms: Date.now() - since },
        `requests served again: ${code === 'BROKER_UNAVAILABLE' ? 'Redis' : 'PostgreSQL'} is back`,
      )
    }
    this.open.clear()
  }
}
