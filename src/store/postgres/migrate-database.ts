/** `migrate()` for users and the CLI: connect, apply missing migrations, disconnect. */
import { Kysely, PostgresDialect } from 'kysely'
import { MIGRATIONS } from './migrations/index.js'
import { checkSchemaName, DEFAULT_SCHEMA, migrate } from './migrator.js'

export interface MigrateResult {
  schema: string
  /** Versions applied by this call, in order (empty when already current). */
  applied: number[]
  /** The schema's version now. */
  version: number
}

/**
 * Applies taskloom's missing migrations to a PostgreSQL database. Safe to run concurrently and
 * repeatedly (an advisory lock serialises runs; applied versions are skipped).
 * @example
 * await migrateDatabase(process.env.DATABASE_URL!)
 */
export async function migrateDatabase(url: string, schema = DEFAULT_SCHEMA): Promise<MigrateResult> {
  checkSchemaName(schema)
  const { default: pg } = await import('pg')
  const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 10_000 })
  pool.on('error', () => {})
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })
  try {
    const applied = await migrate(db, { schema })
    return { schema, applied, version: Math.max(...MIGRATIONS.map((m) => m.version)) }
  } finally {
    await db.destroy()
  }
}
