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
}

export interface ChosenDialect {
  dialect: Dialect
  kind: 'postgres' | 'pglite'
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
    return { kind: 'postgres', dialect: new PostgresDialect({ pool: () => openPool(input, settings) }) }
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
    return { kind: 'postgres', dialect: new PostgresDialect({ pool: borrowed }) }
  }
  if (input && 'pglite' in input) {
    return { kind: 'pglite', dialect: new PGliteDialect({ pglite: input.pglite, closeOnDestroy: false }) }
  }
  const dataDir = input?.dataDir
  return { kind: 'pglite', dialect: new PGliteDialect({ pglite: () => openPGlite(dataDir) }) }
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
