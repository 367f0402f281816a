/**
 * A kysely dialect over PGlite (PostgreSQL in WASM): kysely's own Postgres adapter, query compiler
 * and introspector, with a tiny driver over `pglite.query(sql, params)`.
 *
 * PGlite is one session. Its own lock serialises access: every `query()` waits its turn, and
 * `transaction()` holds the lock from BEGIN to COMMIT. A kysely transaction runs inside
 * `pglite.transaction()`, so no other query (from this driver, another store sharing the instance,
 * or the application) can land inside it. PGlite runs one statement at a time, so isolation levels
 * and access modes have nothing to choose between and are ignored.
 */
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
} from 'kysely'

export interface PGliteResult<R> {
  rows: R[]
  affectedRows?: number
}

/** The part of a PGlite instance the dialect uses; no dependency on PGlite's types. */
export interface PGliteLike {
  query<R>(sql: string, params?: unknown[]): Promise<PGliteResult<R>>
  /** Runs `callback` between BEGIN and COMMIT (ROLLBACK when it throws), holding the instance. */
  transaction<T>(callback: (tx: PGliteTransaction) => Promise<T>): Promise<T>
  close(): Promise<void>
}

export interface PGliteTransaction {
  query<R>(sql: string, params?: unknown[]): Promise<PGliteResult<R>>
}

export interface PGliteDialectConfig {
  /** An open instance, or a factory called once, on first use. */
  pglite: PGliteLike | (() => Promise<PGliteLike>)
  /** Whether `db.destroy()` closes the instance. Default: only an instance the factory made. */
  closeOnDestroy?: boolean
}

export class PGliteDialect implements Dialect {
  readonly #config: PGliteDialectConfig

  constructor(config: PGliteDialectConfig) {
    this.#config = config
  }

  createDriver(): Driver {
    return new PGliteDriver(this.#config)
  }

  createQueryCompiler(): PostgresQueryCompiler {
    return new PostgresQueryCompiler()
  }

  createAdapter(): PostgresAdapter {
    return new PostgresAdapter()
  }

  createIntrospector(db: Kysely<unknown>): PostgresIntrospector {
    return new PostgresIntrospector(db)
  }
}

class PGliteDriver implements Driver {
  readonly #config: PGliteDialectConfig
  #pglite: PGliteLike | undefined

  constructor(config: PGliteDialectConfig) {
    this.#config = config
  }

  async init(): Promise<void> {
    const source = this.#config.pglite
    this.#pglite = typeof source === 'function' ? await source() : source
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (!this.#pglite) throw new Error('the PGlite driver has been destroyed')
    return new PGliteConnection(this.#pglite)
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).begin()
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).end(true)
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).end(false)
  }

  async releaseConnection(): Promise<void> {}

  /** Closes an instance the driver opened, once the queries already queued on it have run. */
  async destroy(): Promise<void> {
    const pglite = this.#pglite
    this.#pglite = undefined
    if (!pglite || !(this.#config.closeOnDestroy ?? typeof this.#config.pglite === 'function')) return
    await pglite.query('select 1').catch(() => {})
    await pglite.close()
  }
}

/** Thrown inside `pglite.transaction()` to make it roll back; never escapes. */
const ROLLBACK = Symbol('rollback')

/** One kysely connection: plain queries go to the instance, or to the open transaction. */
class PGliteConnection implements DatabaseConnection {
  readonly #pglite: PGliteLike
  #tx: PGliteTransaction | undefined
  #finish: ((commit: boolean) => void) | undefined
  #done: Promise<void> | undefined

  constructor(pglite: PGliteLike) {
    this.#pglite = pglite
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const target = this.#tx ?? this.#pglite
    const result = await target.query<R>(query.sql, [...query.parameters])
    if (result.affectedRows === undefined) return { rows: result.rows }
    return { rows: result.rows, numAffectedRows: BigInt(result.affectedRows) }
  }

  // biome-ignore lint/correctness/useYield: streaming is not supported; the generator only throws
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('the PGlite dialect does not support streaming queries')
  }

  /** Resolves once BEGIN has run and the transaction holds the instance. */
  begin(): Promise<void> {
    return new Promise<void>((started, failed) => {
      const done = this.#pglite.transaction(async (tx) => {
        this.#tx = tx
        started()
        const commit = await new Promise<boolean>((resolve) => {
          this.#finish = resolve
        })
        if (!commit) throw ROLLBACK
      })
      this.#done = done
        .catch((err: unknown) => {
          if (err !== ROLLBACK) throw err
        })
        .finally(() => {
          this.#tx = undefined
          this.#finish = undefined
        })
      this.#done.catch(failed)
    })
  }

  /** COMMIT (or ROLLBACK) and release the instance; a failed COMMIT rejects here. */
  async end(commit: boolean): Promise<void> {
    this.#finish?.(commit)
    await this.#done
  }
}
