/** The PostgreSQL / PGlite Store and its migrations. */
export type { PGliteInstance, PGliteOptions, PgPoolLike, PoolSettings, PostgresInput } from './connection.js'
export type { Migration } from './migrations/index.js'
export { MIGRATIONS } from './migrations/index.js'
export {
  appliedVersions,
  assertSchemaCurrent,
  DEFAULT_SCHEMA,
  type MigrateOptions,
  migrate,
} from './migrator.js'
export { PGliteDialect, type PGliteDialectConfig, type PGliteLike } from './pglite-dialect.js'
export {
  openPostgresStore,
  PostgresStore,
  type PostgresStoreOptions,
  type QueryEvent,
} from './postgres-store.js'
export type { Database } from './tables.js'
