/**
 * One database per test file, for the store suites: the shared PostgreSQL (a pool, and schemas this
 * file names uniquely and drops afterwards) or an in-memory PGlite. Each test opens stores on its own
 * queue, so tests in one file never see each other's rows.
 */
import { PGlite } from '@electric-sql/pglite'
import { Kysely } from 'kysely'
import pg from 'pg'
import { chooseDialect, type PostgresInput } from '../../src/store/postgres/connection.js'
import {
  type Database,
  migrate,
  openPostgresStore,
  type PostgresStore,
  type PostgresStoreOptions,
} from '../../src/store/postgres/index.js'
import { DATABASE_URL, uniqueName } from '../helpers/services.js'

export interface Harness {
  name: 'postgres' | 'pglite'
  /** The schema this file migrated in `setup()`. */
  schema: string
  /** A new schema name, dropped in `teardown()`. */
  newSchema(): string
  /** Opens a store on a fresh queue (unless given) in `schema` (unless given), counting statements. */
  open(options?: PostgresStoreOptions): Promise<OpenedStore>
  /** A kysely on the same database; destroying it leaves the database open. */
  kysely(): Kysely<Database>
  setup(): Promise<void>
  teardown(): Promise<void>
}

export interface OpenedStore {
  store: PostgresStore
  /** Statements run since the store opened (or since the last `resetStatements`). */
  statements(): number
  resetStatements(): void
}

export function postgresHarness(): Harness {
  let pool: pg.Pool | undefined
  return makeHarness('postgres', {
    connect: () => {
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 })
      return pool
    },
    disconnect: async () => {
      await pool?.end()
    },
  })
}

export function pgliteHarness(): Harness {
  let pglite: PGlite | undefined
  return makeHarness('pglite', {
    connect: async () => {
      pglite = await PGlite.create()
      return { pglite }
    },
    disconnect: async () => {
      await pglite?.close()
    },
  })
}

interface Connector {
  connect(): PostgresInput | Promise<PostgresInput>
  disconnect(): Promise<void>
}

function makeHarness(name: Harness['name'], connector: Connector): Harness {
  const schemas: string[] = []
  const opened: PostgresStore[] = []
  let input: PostgresInput | undefined
  const newSchema = () => {
    const schema = uniqueName(`tl_store_${name}`).replace(/-/g, '_')
    schemas.push(schema)
    return schema
  }
  const kysely = () => new Kysely<Database>({ dialect: chooseDialect(input).dialect })
  const harness: Harness = {
    name,
    schema: '',
    newSchema,
    kysely,
    async setup() {
      input = await connector.connect()
      harness.schema = newSchema()
      const db = kysely()
      await migrate(db, { schema: harness.schema })
      await db.destroy()
    },
    async open(options = {}) {
      let count = 0
      const store = await openPostgresStore({
        postgres: input,
        schema: harness.schema,
        queue: uniqueName('q'),
        migrate: false,
        ...options,
        onQuery: () => {
          count += 1
        },
      })
      opened.push(store)
      count = 0
      return {
        store,
        statements: () => count,
        resetStatements: () => {
          count = 0
        },
      }
    },
    async teardown() {
      await Promise.all(opened.splice(0).map((store) => store.close()))
      const db = kysely()
      try {
        for (const schema of schemas.splice(0)) {
          await db.schema.dropSchema(schema).ifExists().cascade().execute()
        }
      } finally {
        await db.destroy()
        await connector.disconnect()
      }
    },
  }
  return harness
}
