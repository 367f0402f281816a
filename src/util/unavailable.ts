/**
 * Telling "the server is not there" from every other failure of a Redis or PostgreSQL call, so that
 * each layer reports an outage as the typed, retryable BROKER_UNAVAILABLE or STORE_UNAVAILABLE and
 * everything else as it is.
 */
import { TaskloomError } from '../errors.js'

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
