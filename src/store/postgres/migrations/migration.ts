/** One versioned step of the schema. Versions are applied in order, each exactly once. */
import type { Kysely } from 'kysely'
import type { Database } from '../tables.js'

export interface Migration {
  /** 1, 2, 3…: the order of application, recorded in `taskloom_migrations`. */
  version: number
  name: string
  /**
   * Runs inside the migration transaction, with the schema already created. Statements name their
   * tables with `sql.id(schema, table)`; one statement per query (PGlite prepares each one).
   */
  up(db: Kysely<Database>, schema: string): Promise<void>
}
