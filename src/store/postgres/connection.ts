/**
 * Which database the store talks to, chosen by what the caller passes: a URL or a `pg.Pool`-like
 * object (PostgreSQL through `pg`), or nothing / `{ dataDir }` / `{ pglite }` (embedded PGlite).
 * Drivers load lazily, so embedded users never load `pg` and server users never load the WASM.
 */
import { type Dialect, PostgresDialect, type PostgresPool } from 'kysely'
import { TaskloomError } from '../../errors.js'
import { PGliteDialect, type PGliteLike } from './pglite-dialect.js'

/**
 * The part of a `pg.Pool` the store uses (kysely's `PostgresPool`): `connect()` and `end()`.
 * A pool passed in is never ended by the store.
 */
export type PgPoolLike = PostgresPool

/** Embedded PGlite: in memory, or persisted in `dataDir` when one is given. */
export interface PGliteOptions {
  dataDir?: string | undefined
}

/** An open PGlite instance to use (and not close). */
export interface PGliteInstance {
  pglite: PGliteLike
}

export type PostgresInput = string | PgPoolLike | PGliteOptions | PGliteInstance

export interface PoolSettings {
  /** Connections in a pool the store opens from a URL. Default 10. */
  max?: number | undefined
  /** How long to wait for a connection before failing. Default 10 s. */
  connectionTimeoutMs?: number | undefined
  /**
   * How long a store call may wait for PostgreSQL before it fails with the retryable
   * STORE_UNAVAILABLE (a frozen or unreachable server otherwise blocks it for as long as that lasts).
   * A statement that takes longer has its connection closed, so the pool never hands out a
   * connection still waiting for an answer. Migrations are not bounded. Default 5 s.
   */
  queryTimeoutMs?: number | undefined
}

/** The bound on statements, set once the store has opened (migrations run unbounded). */
export interface StatementDeadline {
  ms: number | undefined
}

export interface ChosenDialect {
  dialect: Dialect
  kind: 'postgres' | 'pglite'
  /** Set `ms` to bound every statement from then on (PostgreSQL only; PGlite runs in-process). */
  deadline: StatementDeadline
}

export function chooseDialect(input: PostgresInput | undefined, settings: PoolSettings = {}): ChosenDialect {
  if (typeof input === 'string') {
    if (!/^postgres(ql)?:\/\//.test(input)) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        'postgres must be a postgres:// URL, a pg.Pool or PGlite options',
        {
          issues: [{ path: 'postgres', message: 'expected a postgres:// or postgresql:// URL' }],
        },
      )
    }
    const deadline: StatementDeadline = { ms: undefined }
    const pool = async () => bounded(await openPool(input, settings), deadline)
    return { kind: 'postgres', dialect: new PostgresDialect({ pool }), deadline }
  }
  if (input && isPool(input)) {
    // kysely ends the pool on destroy; the caller owns this one, so ending it is a no-op here.
    // Its clients get the same 'error' guard as ours (once each, however many queues share the
    // pool), so a server restart cannot crash.
    const borrowed: PgPoolLike = {
      connect: async () => {
        const client = await input.connect()
        const emitter = client as unknown as { on?: (event: string, fn: () => void) => void }
        if (!guarded.has(client) && typeof emitter.on === 'function') {
          emitter.on('error', () => {})
          guarded.add(client)
        }
        return client
      },
      end: async () => {},
    }
    const deadline: StatementDeadline = { ms: undefined }
    return { kind: 'postgres', dialect: new PostgresDialect({ pool: bounded(borrowed, deadline) }), deadline }
  }
  const deadline: StatementDeadline = { ms: undefined }
  if (input && 'pglite' in input) {
    const dialect = new PGliteDialect({ pglite: input.pglite, closeOnDestroy: false })
    return { kind: 'pglite', dialect, deadline }
  }
  const dataDir = input?.dataDir
  return { kind: 'pglite', dialect: new PGliteDialect({ pglite: () => openPGlite(dataDir) }), deadline }
}

type PoolClient = Awaited<ReturnType<PgPoolLike['connect']>>

/**
 * A pool whose clients fail a statement PostgreSQL has not answered within `deadline.ms` with
 * STORE_UNAVAILABLE. Such a client's connection is in an unknown state (the answer may still come),
 * so it is closed when released instead of going back to the pool; the statement itself may still
 * commit if the server was only slow. Each client keeps one wrapper (kysely keys its connections by
 * client object).
 */
function bounded(pool: PgPoolLike, deadline: StatementDeadline): PgPoolLike {
  const wrappers = new WeakMap<object, PoolClient>()
  const wrap = (client: PoolClient): PoolClient => {
    let broken = false
    const query = (sqlText: unknown, params?: unknown) => {
      const ms = deadline.ms
      const call = (client.query as (q: unknown, p?: unknown) => Promise<unknown>).call(
        client,
        sqlText,
        params,
      )
      if (ms === undefined || typeof sqlText !== 'string') return call
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          broken = true
          reject(
            new TaskloomError(
              'STORE_UNAVAILABLE',
              `PostgreSQL did not answer within ${ms} ms (queryTimeoutMs)`,
              {
                retryable: true,
              },
            ),
          )
        }, ms)
        call.then(
          (value) => {
            clearTimeout(timer)
            resolve(value)
          },
          (err: unknown) => {
            clearTimeout(timer)
            reject(err)
          },
        )
      })
    }
    // `true` makes the pool close the connection instead of keeping it.
    const release = (destroy?: boolean) => client.release(broken || destroy)
    return Object.assign(Object.create(client) as PoolClient, { query, release })
  }
  return {
    connect: async () => {
      const client = await pool.connect()
      let wrapper = wrappers.get(client)
      if (!wrapper) {
        wrapper = wrap(client)
        wrappers.set(client, wrapper)
      }
      return wrapper
    },
    end: () => pool.end(),
  }
}

/** Clients of borrowed pools that already carry the 'error' guard; shared by every queue. */
const guarded = new WeakSet<object>()

function isPool(input: object): input is PgPoolLike {
  return typeof (input as { connect?: unknown }).connect === 'function'
}

async function openPool(url: string, settings: PoolSettings): Promise<PgPoolLike> {
  const { default: pg } = await import('pg')
  const pool = new pg.Pool({
    connectionString: url,
    max: settings.max ?? 10,
    connectionTimeoutMillis: settings.connectionTimeoutMs ?? 10_000,
  })
  // An idle connection that dies (a server restart) must not crash the process; the next query
  // gets a fresh connection or a clear error.
  pool.on('error', () => {})
  // A checked-out client whose server goes away emits 'error' too, and pg-pool does not listen
  // while it is checked out: without this, a PostgreSQL restart would crash the process. The
  // query in progress still fails, and the store reports STORE_UNAVAILABLE.
  pool.on('connect', (client) => {
    client.on('error', () => {})
  })
  return pool
}

async function openPGlite(dataDir: string | undefined): Promise<PGliteLike> {
  const { PGlite } = await import('@electric-sql/pglite')
  return PGlite.create(dataDir)
}
