/**
 * Versioned migrations, recorded in `<schema>.taskloom_migrations`. `migrate()` applies the missing
 * ones in one transaction under an advisory lock (so concurrent starts are safe); a queue calls
 * `assertSchemaCurrent()` at start and refuses an older schema with a message saying how to migrate.
 */
import { type Kysely, sql } from 'kysely'
import { TaskloomError } from '../../errors.js'
import { MIGRATIONS, type Migration } from './migrations/index.js'
import type { Database } from './tables.js'

export const DEFAULT_SCHEMA = 'taskloom'

export interface MigrateOptions {
  /** The PostgreSQL schema that holds taskloom's tables. Default 'taskloom'. */
  schema?: string | undefined
  /** Stop after this version. Default: the latest. */
  to?: number | undefined
  /** The migrations to apply (tests). Default: taskloom's own. */
  migrations?: readonly Migration[] | undefined
}

/** A plain identifier, so the schema name needs no quoting anywhere and fits PostgreSQL's limit. */
export function checkSchemaName(schema: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid PostgreSQL schema name "${schema}"`, {
      issues: [
        {
          path: 'schema',
          message: 'use letters, digits and underscores (at most 63), not starting with a digit',
        },
      ],
    })
  }
  return schema
}

/**
 * Applies the migrations this schema lacks; answers the versions applied (none when current).
 *
 * @example
 * const applied = await migrate(db, { schema: 'taskloom' })
 */
export async function migrate<DB>(db: Kysely<DB>, options: MigrateOptions = {}): Promise<number[]> {
  const schema = checkSchemaName(options.schema ?? DEFAULT_SCHEMA)
  const wanted = sorted(options.migrations ?? MIGRATIONS).filter((m) => m.version <= (options.to ?? Infinity))
  return (db as unknown as Kysely<Database>).transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${`taskloom.migrate:${schema}`}))`.execute(trx)
    await sql`create schema if not exists ${sql.id(schema)}`.execute(trx)
    await sql`create table if not exists ${sql.id(schema, 'taskloom_migrations')} (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`.execute(trx)
    const rows = await trx
      .withSchema(schema)
      .selectFrom('taskloom_migrations')
      .select(['version', 'name'])
      .execute()
    refuseForeign(schema, rows, wanted)
    const done = new Set(rows.map((row) => row.version))
    const applied: number[] = []
    for (const migration of wanted) {
      if (done.has(migration.version)) continue
      await migration.up(trx, schema)
      await trx
        .withSchema(schema)
        .insertInto('taskloom_migrations')
        .values({ version: migration.version, name: migration.name })
        .execute()
      applied.push(migration.version)
    }
    return applied
  })
}

/** Versions applied to this schema, ascending; empty when taskloom never migrated it. */
export async function appliedVersions<DB>(
  db: Kysely<DB>,
  schema: string = DEFAULT_SCHEMA,
): Promise<number[]> {
  return (await appliedMigrations(db, schema)).map((row) => row.version)
}

interface AppliedMigration {
  version: number
  name: string
}

async function appliedMigrations<DB>(db: Kysely<DB>, schema: string): Promise<AppliedMigration[]> {
  const kdb = db as unknown as Kysely<Database>
  const exists = await sql<{ found: number }>`select 1 as found from pg_catalog.pg_tables
    where schemaname = ${checkSchemaName(schema)} and tablename = 'taskloom_migrations'`.execute(kdb)
  if (exists.rows.length === 0) return []
  const rows = await kdb
    .withSchema(schema)
    .selectFrom('taskloom_migrations')
    .select(['version', 'name'])
    .execute()
  return rows.sort((a, b) => a.version - b.version)
}

/**
 * Throws SCHEMA_MISMATCH when a version recorded in the schema carries another name than this
 * build's migration of that version: another build (a fork, a branch, a newer release whose
 * numbering differs) migrated it, and applying or trusting the rest would run on tables this
 * build does not know.
 */
function refuseForeign(
  schema: string,
  applied: readonly AppliedMigration[],
  ours: readonly Migration[],
): void {
  const byVersion = new Map(ours.map((m) => [m.version, m.name]))
  const foreign = applied.filter(
    (row) => byVersion.has(row.version) && byVersion.get(row.version) !== row.name,
  )
  if (foreign.length === 0) return
  const list = foreign.map((row) => `${row.version} is "${row.name}", here "${byVersion.get(row.version)}"`)
  throw new TaskloomError(
    'SCHEMA_MISMATCH',
    `PostgreSQL schema "${schema}" was migrated by another taskloom build (version ${list.join('; ')}); ` +
      'use a schema of its own for this build, or the build that migrated it',
    { retryable: false },
  )
}

/** Throws SCHEMA_MISMATCH when another build migrated the schema, SCHEMA_OUTDATED unless every migration this version of taskloom needs has been applied. */
export async function assertSchemaCurrent<DB>(
  db: Kysely<DB>,
  options: Omit<MigrateOptions, 'to'> = {},
): Promise<void> {
  const schema = checkSchemaName(options.schema ?? DEFAULT_SCHEMA)
  const needed = sorted(options.migrations ?? MIGRATIONS)
  const applied = await appliedMigrations(db, schema)
  refuseForeign(schema, applied, needed)
  const done = new Set(applied.map((row) => row.version))
  const missing = needed.filter((m) => !done.has(m.version))
  if (missing.length === 0) return
  const have = done.size === 0 ? 'has no taskloom tables' : `is at version ${Math.max(...done)}`
  const latest = needed[needed.length - 1]!.version
  throw new TaskloomError(
    'SCHEMA_OUTDATED',
    `PostgreSQL schema "${schema}" ${have}, and this taskloom needs version ${latest} ` +
      `(missing: ${missing.map((m) => `${m.version}-${m.name}`).join(', ')}); ` +
      'run `npx taskloom migrate` or call migrate()',
    { retryable: false },
  )
}

function sorted(migrations: readonly Migration[]): Migration[] {
  return [...migrations].sort((a, b) => a.version - b.version)
}
