/**
 * What `createQueue({ redis })` accepts: a URL, or an ioredis client the application owns, and how
 * taskloom's own connections behave while Redis is unreachable:
 * - every command waits at most `timeoutMs` for the connection to come back and the answer to
 *   arrive, then rejects with the retryable BROKER_UNAVAILABLE. Unlike ioredis' `commandTimeout`,
 *   the deadline gives the answer one more I/O turn: a loop stalled past the deadline (a busy box)
 *   reads the answers that arrived meanwhile before it declares any command timed out;
 * - a command that gave up while queued for a reconnect is never sent afterwards (ioredis would send
 *   its offline queue on reconnect, running writes whose callers were told they failed);
 * - blocking reads (BZPOPMIN, XREADGROUP BLOCK) time out after their own block time plus ioredis'
 *   grace, or after `timeoutMs` while queued, and answer "nothing" instead;
 * - losing the connection is logged once at WARN and getting it back once at INFO, with how long
 *   it was down (not per command, not per reconnect attempt).
 */
import { Redis, type RedisOptions, ReplyError } from 'ioredis'
import { TaskloomError } from '../../errors.js'
import type { Logger } from '../../logger.js'

export type RedisInput = string | Redis

/** Default of `createQueue({ brokerTimeoutMs })`. */
export const BROKER_TIMEOUT_MS = 5000

export interface ConnectOptions {
  /** Longest wait of one command, queued for a reconnect or sent. Default 5,000 ms. */
  timeoutMs?: number
  /** Where losing and regaining the connection is logged (once each). Default: not logged. */
  logger?: Logger
  /** Named in those log lines (the queue). */
  name?: string
}

export interface RedisHandle {
  client: Redis
  /** A fresh connection for blocking commands (BZPOPMIN), always owned by us. */
  duplicate(): Redis
  /** Closes the client if we created it; a client passed in is left to its owner. */
  close(): Promise<void>
}

export function connectRedis(input: RedisInput, options: ConnectOptions = {}): RedisHandle {
  const timeoutMs = options.timeoutMs ?? BROKER_TIMEOUT_MS
  const owned = typeof input === 'string'
  // A queue keeps working across reconnects (no per-request retry limit): commands wait for the
  // connection to come back, but never longer than the command timeout.
  const commands: RedisOptions = { maxRetriesPerRequest: null }
  // Blocking reads wait longer than any command timeout by design; ioredis bounds them itself.
  const blocking: RedisOptions = { maxRetriesPerRequest: null, blockingTimeout: timeoutMs }
  // A client of the application's is used as it is: its own options (commandTimeout included)
  // apply, and the broker maps its failures (see `unavailable`).
  const client = owned ? guard(new Redis(input, commands), timeoutMs) : input
  const state = { closing: false }
  if (options.logger) watch(client, options.logger, options.name, timeoutMs, state)
  return {
    client,
    duplicate: () => guard(client.duplicate({ ...blocking, commandTimeout: undefined }), null),
    close: async () => {
      state.closing = true
      if (owned) await quit(client)
    },
  }
}

const guarded = new WeakSet<Redis>()

/**
 * Connection errors are retried by ioredis and surface on the commands that fail; without a
 * listener they would also be printed as "Unhandled error event" on every reconnect attempt.
 * Commands that already gave up are dropped instead of sent, and a command failing for want of a
 * connection rejects with BROKER_UNAVAILABLE.
 */
function guard(client: Redis, timeoutMs: number | null): Redis {
  if (guarded.has(client)) return client
  guarded.add(client)
  client.on('error', () => {})
  const send = client.sendCommand.bind(client)
  /** Commands seen here (timed from the first time), and those whose promise settled. */
  const seen = new WeakSet<object>()
  const settled = new WeakSet<object>()
  client.sendCommand = ((command, stream) => {
    // ioredis sends its offline queue (and commands cut off by a lost connection) through here
    // again on reconnect; one that already settled, above all one that timed out, is dropped.
    // (`isResolved` alone is not enough: ioredis sets it on success only.)
    if (command.isResolved || settled.has(command)) return command.promise
    if (!seen.has(command)) {
      seen.add(command)
      // The deadline gives the answer one more I/O turn (setImmediate runs after the poll phase),
      // so a stalled loop reads answers that arrived before it declares the command timed out.
      const timer =
        timeoutMs === null
          ? undefined
          : setTimeout(
              () =>
                setImmediate(() => {
                  if (!command.isResolved && !settled.has(command))
                    command.reject(new Error('Command timed out'))
                }),
              timeoutMs,
            )
      const done = () => {
        settled.add(command)
        clearTimeout(timer)
      }
      command.promise.then(done, done)
    }
    const sent = (send(command, stream) as Promise<unknown>).catch((err: unknown) => {
      throw unavailable(err)
    })
    // ioredis sends again what it queued for a reconnect and ignores that call's answer; the
    // caller listens on the answer of the first call.
    sent.catch(() => {})
    return sent
  }) as Redis['sendCommand']
  return client
}

/**
 * A failed Redis call as taskloom reports it: a reply error (a script's, a wrong type) as it is,
 * anything else (a timeout, a lost connection) as the retryable BROKER_UNAVAILABLE.
 */
export function unavailable(err: unknown): unknown {
  if (err instanceof TaskloomError || err instanceof ReplyError) return err
  if (!(err instanceof Error)) return err
  return new TaskloomError('BROKER_UNAVAILABLE', `Redis is unavailable: ${err.message}`, {
    cause: err,
    retryable: true,
  })
}

/** One WARN when the connection goes (or never comes), one INFO when it is back. */
function watch(
  client: Redis,
  logger: Logger,
  name: string | undefined,
  timeoutMs: number,
  state: { closing: boolean },
): void {
  let lostAt: number | undefined
  let everReady = client.status === 'ready'
  const lose = (err?: unknown) => {
    if (lostAt !== undefined || state.closing || client.status === 'end') return
    lostAt = Date.now()
    logger.warn(
      { queue: name, err, timeout_ms: timeoutMs },
      everReady
        ? `Redis connection lost; calls fail with BROKER_UNAVAILABLE after ${timeoutMs} ms until it is back`
        : `Redis is unreachable; calls fail with BROKER_UNAVAILABLE after ${timeoutMs} ms until it answers`,
    )
  }
  client.on('error', (err: unknown) => lose(err))
  client.on('close', () => {
    if (everReady) lose()
  })
  client.on('ready', () => {
    if (lostAt !== undefined) {
      logger.info({ queue: name, down_ms: Date.now() - lostAt }, 'Redis connection restored')
    }
    lostAt = undefined
    everReady = true
  })
}

export async function quit(client: Redis): Promise<void> {
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
}
