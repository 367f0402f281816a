/**
 * What `createQueue({ redis })` accepts: a URL, an ioredis client the application owns (one server
 * or a `Cluster`), or `{ cluster: [seed URLs] }` / `{ sentinels, name }` for a Redis Cluster or a
 * Sentinel-managed primary, and how taskloom's own connections behave while Redis is unreachable:
 * - every command waits at most `timeoutMs` for the connection to come back and the answer to
 *   arrive, then rejects with the retryable BROKER_UNAVAILABLE. Unlike ioredis' `commandTimeout`,
 *   the deadline gives the answer one more I/O turn: a loop stalled past the deadline (a busy box)
 *   reads the answers that arrived meanwhile before it declares any command timed out;
 * - a command that gave up while queued for a reconnect is never sent afterwards (ioredis would send
 *   its offline queue on reconnect, running writes whose callers were told they failed);
 * - blocking reads (BZPOPMIN, XREADGROUP BLOCK) time out after their own block time plus ioredis'
 *   grace, or after `timeoutMs` while queued, and answer "nothing" instead;
 * - losing the connection is logged once at WARN and getting it back once at INFO, with how long
 *   it was down (not per command, not per reconnect attempt);
 * - on a Cluster, a slot without a master for now (CLUSTERDOWN, TRYAGAIN, a failover under way) is
 *   the same retryable BROKER_UNAVAILABLE; ioredis follows MOVED/ASK redirections by itself.
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions, ReplyError } from 'ioredis'
import { TaskloomError } from '../../errors.js'
import type { Logger } from '../../logger.js'

/** A connection taskloom talks through: one server (maybe Sentinel-managed) or a Redis Cluster. */
export type RedisClient = Redis | Cluster

/** The object form of `createQueue({ redis })`: exactly one of `url`, `client`, `cluster`, `sentinels`. */
export interface RedisConnectionOptions {
  /** A redis:// (or rediss://) URL of one server. */
  url?: string
  /** An ioredis client (a `Redis` or a `Cluster`) the application owns and closes. */
  client?: RedisClient
  /** Seed URLs of a Redis Cluster (any few of its nodes): taskloom opens a `Cluster` client. */
  cluster?: readonly string[]
  /** Sentinels watching the primary named `name`: the connection follows it through failovers. */
  sentinels?: readonly { host: string; port: number }[]
  /** The Sentinel-monitored primary's name (with `sentinels`). */
  name?: string
  /**
   * More ioredis options for the connections taskloom opens (a password, TLS, Sentinel auth); for
   * `cluster`, they apply to every node connection.
   */
  options?: RedisOptions
  /** More ioredis `Cluster` options (with `cluster`), e.g. `natMap`, `slotsRefreshTimeout`. */
  clusterOptions?: ClusterOptions
  /**
   * Redis-only mode: a submit resolves only once this many replicas acknowledged its writes (WAIT),
   * so a failover to one of them loses no acknowledged task; a submit whose writes reached fewer
   * replicas within `brokerTimeoutMs` fails with the retryable BROKER_UNAVAILABLE (its task may
   * still run). Default 0: a submit resolves when the primary has it.
   */
  waitReplicas?: number
}

export type RedisInput = string | RedisClient | RedisConnectionOptions

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
  client: RedisClient
  /** A fresh connection for blocking commands (BZPOPMIN), always owned by us. */
  duplicate(): RedisClient
  /** Closes the client if we created it; a client passed in is left to its owner. */
  close(): Promise<void>
  /** The replicas a write must reach before a submit resolves (`waitReplicas`). */
  waitReplicas: number
}

/** True for a Redis Cluster client (`instanceof` fails across two copies of ioredis). */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true
}

function checkInput(input: RedisInput): void {
  if (typeof input === 'string' || input instanceof Redis || input instanceof Cluster) return
  if (typeof input !== 'object' || input === null || 'sendCommand' in input) return
  const given = (['url', 'client', 'cluster', 'sentinels'] as const).filter((k) => input[k] !== undefined)
  const bad = (why: string) => new TaskloomError('INVALID_OPTIONS', `redis: ${why}`)
  if (given.length !== 1) throw bad('give exactly one of url, client, cluster or sentinels')
  if (input.cluster !== undefined && input.cluster.length === 0)
    throw bad('cluster needs at least one seed URL')
  if (input.sentinels !== undefined && !input.name) throw bad("sentinels need the primary's name")
  const w = input.waitReplicas
  if (w !== undefined && (!Number.isInteger(w) || w < 0)) throw bad('waitReplicas must be an integer >= 0')
}

/** A node of a cluster seed list, from its URL. */
function seedNode(url: string): { host: string; port: number } {
  const u = new URL(url)
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) }
}

/** Node options from the first seed URL (user, password, TLS), applied to every node. */
function seedAuth(url: string | undefined): RedisOptions {
  if (!url) return {}
  const u = new URL(url)
  const out: RedisOptions = {}
  if (u.username) out.username = decodeURIComponent(u.username)
  if (u.password) out.password = decodeURIComponent(u.password)
  if (u.protocol === 'rediss:') out.tls = {}
  return out
}

/** The client taskloom opens for an input that is not a client: answers it and whether we own it. */
function open(input: RedisInput, commands: RedisOptions): { client: RedisClient; owned: boolean } {
  if (typeof input === 'string') return { client: new Redis(input, commands), owned: true }
  if (input instanceof Redis || input instanceof Cluster || 'sendCommand' in input) {
    return { client: input as RedisClient, owned: false }
  }
  if (input.client) return { client: input.client, owned: false }
  if (input.url) return { client: new Redis(input.url, { ...input.options, ...commands }), owned: true }
  if (input.cluster) {
    const client = new Cluster(input.cluster.map(seedNode), {
      ...input.clusterOptions,
      redisOptions: { ...seedAuth(input.cluster[0]), ...input.options, ...commands },
    })
    return { client, owned: true }
  }
  const sentinel = new Redis({
    ...input.options,
    sentinels: input.sentinels!.map((s) => ({ ...s })),
    name: input.name,
    // A primary demoted by a failover answers writes with READONLY: reconnect (to the new one).
    reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
    ...commands,
  })
  return { client: sentinel, owned: true }
}

export function connectRedis(input: RedisInput, options: ConnectOptions = {}): RedisHandle {
  checkInput(input)
  const timeoutMs = options.timeoutMs ?? BROKER_TIMEOUT_MS
  // A queue keeps working across reconnects (no per-request retry limit): commands wait for the
  // connection to come back, but never longer than the command timeout.
  const commands: RedisOptions = { maxRetriesPerRequest: null }
  // Blocking reads wait longer than any command timeout by design; ioredis bounds them itself.
  const blocking: RedisOptions = { maxRetriesPerRequest: null, blockingTimeout: timeoutMs }
  // A client of the application's is used as it is: its own options (commandTimeout included)
  // apply, and the broker maps its failures (see `unavailable`).
  const opened = open(input, commands)
  const client = opened.owned ? guard(opened.client, timeoutMs) : opened.client
  const state = { closing: false }
  if (options.logger) watch(client, options.logger, options.name, timeoutMs, state)
  const waitReplicas = typeof input === 'object' && 'waitReplicas' in input ? (input.waitReplicas ?? 0) : 0
  return {
    client,
    waitReplicas,
    duplicate: () => {
      if (!isCluster(client)) return guard(client.duplicate({ ...blocking, commandTimeout: undefined }), null)
      const nodes = { ...client.options.redisOptions, ...blocking, commandTimeout: undefined }
      return guard(client.duplicate([], { redisOptions: nodes }), null)
    },
    close: async () => {
      state.closing = true
      if (opened.owned) await quit(client)
    },
  }
}

const guarded = new WeakSet<RedisClient>()

/**
 * Connection errors are retried by ioredis and surface on the commands that fail; without a
 * listener they would also be printed as "Unhandled error event" on every reconnect attempt.
 * Commands that already gave up are dropped instead of sent, and a command failing for want of a
 * connection rejects with BROKER_UNAVAILABLE.
 */
function guard<C extends RedisClient>(client: C, timeoutMs: number | null): C {
  if (guarded.has(client)) return client
  guarded.add(client)
  client.on('error', () => {})
  // A Cluster's sendCommand takes a third argument (the node a redirected command goes to).
  type Send = (command: Parameters<Redis['sendCommand']>[0], ...rest: unknown[]) => Promise<unknown>
  const send = client.sendCommand.bind(client) as Send
  /** Commands seen here (timed from the first time), and those whose promise settled. */
  const seen = new WeakSet<object>()
  const settled = new WeakSet<object>()
  const sendGuarded: Send = (command, ...rest) => {
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
    const sent = send(command, ...rest).catch((err: unknown) => {
      throw unavailable(err)
    })
    // ioredis sends again what it queued for a reconnect and ignores that call's answer; the
    // caller listens on the answer of the first call.
    sent.catch(() => {})
    return sent
  }
  client.sendCommand = sendGuarded as C['sendCommand']
  return client
}

/**
 * Reply errors of a server that cannot serve the slot for now: a Cluster without a master for it
 * (CLUSTERDOWN), a slot being moved (TRYAGAIN, ASK/MOVED past ioredis' redirections), a replica
 * still loading, or a primary just demoted by a failover (READONLY, MASTERDOWN).
 */
const CLUSTER_IN_FLUX = /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|LOADING|READONLY|MASTERDOWN)\b/

/**
 * A failed Redis call as taskloom reports it: a reply error (a script's, a wrong type) as it is,
 * anything else (a timeout, a lost connection) as the retryable BROKER_UNAVAILABLE.
 */
export function unavailable(err: unknown): unknown {
  if (err instanceof TaskloomError || !(err instanceof Error)) return err
  if (err instanceof ReplyError && !CLUSTER_IN_FLUX.test(err.message)) return err
  return new TaskloomError('BROKER_UNAVAILABLE', `Redis is unavailable: ${err.message}`, {
    cause: err,
    retryable: true,
  })
}

/**
 * A pipeline or MULTI bounded by `timeoutMs`: on a Cluster, ioredis sends them straight to a node's
 * connection, past the per-command deadline, and one caught by a failover can stay unanswered.
 * Its late answer, if any, is dropped (every pipeline taskloom sends is safe to run late or twice).
 */
export function bounded<T>(exec: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailable(new Error('Command timed out'))), timeoutMs)
  })
  exec.catch(() => {})
  return Promise.race([exec, late]).finally(() => clearTimeout(timer))
}

/** One WARN when the connection goes (or never comes), one INFO when it is back. */
function watch(
  client: RedisClient,
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

export async function quit(client: RedisClient): Promise<void> {
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
}
