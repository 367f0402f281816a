/**
 * What the API makes of a backend that is down: the failure a request met is reported as the
 * retryable BROKER_UNAVAILABLE or STORE_UNAVAILABLE (503 with Retry-After), whichever layer it came
 * from (the queue maps its own; API keys, audit and rate limits reach PostgreSQL and Redis directly),
 * and the outage is logged once when it begins and once when requests are served again, not once
 * per request.
 */
import { TaskloomError } from '../errors.js'
import { type Logger, logEnabled } from '../logger.js'

/** ioredis' own messages for a command that got no answer. */
const REDIS_GONE = new Set([
  'Command timed out',
  'Connection is closed.',
  "Stream isn't writeable and enableOfflineQueue options is false",
])
/** Socket errors of a connection that failed or broke. */
const SOCKET_GONE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND'])
/** pg's own messages for a connection that did not open or broke. */
const PG_GONE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/

/**
 * A raw driver error that means "the server is not there" as the typed, retryable error; anything
 * else as it is. Redis: ioredis' timeouts and closed connections. PostgreSQL: socket errors, pg's
 * connection messages, SQLSTATE class 08 (connection exception), 57P01-57P03 (shutting down, cannot
 * connect now) and 53300 (too many connections).
 */
export function unavailable(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof TaskloomError) return err
  const name = err.name
  if (REDIS_GONE.has(err.message) || name === 'MaxRetriesPerRequestError') {
    return new TaskloomError('BROKER_UNAVAILABLE', `Redis is unavailable: ${err.message}`, { cause: err })
  }
  const code = (err as { code?: unknown }).code
  if (
    (typeof code === 'string' &&
      (SOCKET_GONE.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300')) ||
    PG_GONE.test(err.message)
  ) {
    return new TaskloomError('STORE_UNAVAILABLE', `PostgreSQL is unavailable: ${err.message}`, { cause: err })
  }
  return err
}

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
