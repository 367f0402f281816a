/** Migrations: versioned, idempotent, safe to run concurrently, and an older schema is refused. */
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import {
  appliedVersions,
  assertSchemaCurrent,
  MIGRATIONS,
  type Migration,
  migrate,
} from '../../../src/store/postgres/index.js'
import type { Harness } from '../harness.js'

/** Every version this taskloom ships, and one past the last, for the refuse-an-older-schema tests. */
const VERSIONS = MIGRATIONS.map((m) => m.version)
const LATEST = Math.max(...VERSIONS)
const addColumn: Migration = {
  version: 999,
  name: 'add-note',
  async up(db, schema) {
    await sql`alter table ${sql.id(schema, 'tasks')} add column note text`.execute(db)
  },
}

export function migrationsSuite(h: Harness): void {
  describe('migrations', () => {
    it('creates every table, and applies nothing the second time', async () => {
      const db = h.kysely()
      const schema = h.newSchema()
      try {
        expect(await migrate(db, { schema })).toEqual(VERSIONS)
        expect(await migrate(db, { schema })).toEqual([])
        expect(await appliedVersions(db, schema)).toEqual(VERSIONS)
        const tables = await sql<{ tablename: string }>`select tablename from pg_catalog.pg_tables
          where schemaname = ${schema} order by tablename`.execute(db)
        expect(tables.rows.map((r) => r.tablename)).toEqual(
          expect.arrayContaining([
            'api_keys',
            'audit_log',
            'schedules',
            'task_definitions',
            'taskloom_migrations',
            'tasks',
            'workers',
          ]),
        )
      } finally {
        await db.destroy()
      }
    })

    it('migration 5 keeps a valid tasks_status_created built ahead and rebuilds an invalid or wrong one', async () => {
      const db = h.kysely()
      const definition = async (schema: string) => {
        const rows = await sql<{ valid: boolean; def: string }>`select i.indisvalid as valid,
          pg_get_indexdef(i.indexrelid) as def from pg_catalog.pg_index i
          where i.indexrelid = to_regclass(${`"${schema}"."tasks_status_created"`})`.execute(db)
        return rows.rows[0]
      }
      const indexes = async (schema: string) =>
        (
          await sql<{ indexname: string }>`select indexname from pg_catalog.pg_indexes
            where schemaname = ${schema} and tablename = 'tasks' order by indexname`.execute(db)
        ).rows.map((r) => r.indexname)
      try {
        const ahead = h.newSchema()
        await migrate(db, { schema: ahead, to: 4 })
        await sql`create index tasks_status_created on ${sql.id(ahead, 'tasks')} (queue, status, created_at, id)`.execute(
          db,
        )
        const before = (await definition(ahead))!.def
        expect(await migrate(db, { schema: ahead, to: 5 })).toEqual([5])
        expect((await definition(ahead))!.def).toBe(before)
        expect(await indexes(ahead)).not.toContain('tasks_created')
        expect(await indexes(ahead)).not.toContain('tasks_tenant_created')

        const invalid = h.newSchema()
        await migrate(db, { schema: invalid, to: 4 })
        await sql`create index tasks_status_created on ${sql.id(invalid, 'tasks')} (queue, status, created_at, id)`.execute(
          db,
        )
        // What a failed `create index concurrently` leaves behind.
        await sql`update pg_catalog.pg_index set indisvalid = false
          where indexrelid = to_regclass(${`"${invalid}"."tasks_status_created"`})`.execute(db)
        expect((await definition(invalid))!.valid).toBe(false)
        await migrate(db, { schema: invalid })
        expect((await definition(invalid))!.valid).toBe(true)

        const wrong = h.newSchema()
        await migrate(db, { schema: wrong, to: 4 })
        await sql`create index tasks_status_created on ${sql.id(wrong, 'tasks')} (queue)`.execute(db)
        await migrate(db, { schema: wrong })
        expect((await definition(wrong))!.def).toMatch(/\(queue, status, created_at, id\)$/)
      } finally {
        await db.destroy()
      }
    })

    it('applies each version once when several processes migrate at the same time', async () => {
      const dbs = [h.kysely(), h.kysely(), h.kysely()]
      const schema = h.newSchema()
      try {
        const applied = await Promise.all(dbs.map((db) => migrate(db, { schema })))
        expect(applied.flat().sort((a, b) => a - b)).toEqual(VERSIONS)
      } finally {
        await Promise.all(dbs.map((db) => db.destroy()))
      }
    })

    it('refuses to open a store on a schema that was never migrated, saying how to migrate', async () => {
      const schema = h.newSchema()
      const opening = h.open({ schema, migrate: false })
      await expect(opening).rejects.toMatchObject({ name: 'TaskloomError', code: 'SCHEMA_OUTDATED' })
      await expect(opening).rejects.toThrow(
        /has no taskloom tables.*run `npx taskloom migrate` or call migrate\(\)/,
      )
    })

    it('refuses a schema older than needed, until it is migrated', async () => {
      const db = h.kysely()
      const schema = h.newSchema()
      const needed = [...MIGRATIONS, addColumn]
      try {
        await migrate(db, { schema })
        await expect(assertSchemaCurrent(db, { schema, migrations: needed })).rejects.toThrow(
          new RegExp(
            `is at version ${LATEST}, and this taskloom needs version 999 \\(missing: 999-add-note\\); run \`npx taskloom migrate\``,
          ),
        )
        expect(await migrate(db, { schema, migrations: needed })).toEqual([999])
        await expect(assertSchemaCurrent(db, { schema, migrations: needed })).resolves.toBeUndefined()
      } finally {
        await db.destroy()
      }
    })

    it('refuses a schema another build migrated: a recorded version with another name', async () => {
      const db = h.kysely()
      const schema = h.newSchema()
      const last = MIGRATIONS[MIGRATIONS.length - 1]!
      try {
        await migrate(db, { schema })
        await sql`update ${sql.id(schema, 'taskloom_migrations')} set name = 'branch-only'
          where version = ${last.version}`.execute(db)
        const mismatch = new RegExp(
          `migrated by another taskloom build \\(version ${last.version} is "branch-only", here "${last.name}"\\)`,
        )
        await expect(migrate(db, { schema })).rejects.toMatchObject({ code: 'SCHEMA_MISMATCH' })
        await expect(migrate(db, { schema })).rejects.toThrow(mismatch)
        await expect(assertSchemaCurrent(db, { schema })).rejects.toThrow(mismatch)
        await expect(h.open({ schema, migrate: false })).rejects.toMatchObject({ code: 'SCHEMA_MISMATCH' })
      } finally {
        await db.destroy()
      }
    })

    it('stops at a target version', async () => {
      const db = h.kysely()
      const schema = h.newSchema()
      try {
        const to = VERSIONS[0] ?? 1
        expect(await migrate(db, { schema, migrations: [...MIGRATIONS, addColumn], to })).toEqual([to])
        expect(await appliedVersions(db, schema)).toEqual([to])
      } finally {
        await db.destroy()
      }
    })

    it('migrates when asked to on open', async () => {
      const schema = h.newSchema()
      const { store } = await h.open({ schema, migrate: true })
      expect(store.schema).toBe(schema)
      expect((await store.list()).total).toBe(0)
    })

    it('rejects a schema name that is not a plain identifier', async () => {
      await expect(h.open({ schema: 'bad-name; drop table x' })).rejects.toMatchObject({
        code: 'INVALID_OPTIONS',
      })
    })

    it('gives the other tables their spec columns and defaults', async () => {
      const db = h.kysely().withSchema(h.schema)
      try {
        await db
          .insertInto('api_keys')
          .values({
            id: 'key-1',
            key_hash: 'sha256:abc',
            tenant_id: 'acme',
            scopes: ['tasks:read', 'tasks:write'],
          })
          .execute()
        const key = await db
          .selectFrom('api_keys')
          .selectAll()
          .where('id', '=', 'key-1')
          .executeTakeFirstOrThrow()
        expect(key).toMatchObject({
          scopes: ['tasks:read', 'tasks:write'],
          is_active: true,
          expires_at: null,
        })
        expect(key.created_at).toBeInstanceOf(Date)

        await db
          .insertInto('workers')
          .values({ id: 'w1', queue: 'q', status: 'active', last_heartbeat: new Date() })
          .execute()
        await db
          .insertInto('schedules')
          .values({
            id: 's1',
            queue: 'q',
            tenant_id: 'acme',
            task_name: 'report',
            cron: '0 * * * *',
            created_at: new Date(),
            updated_at: new Date(),
          })
          .execute()
        await db
          .insertInto('audit_log')
          .values({ action: 'task.submit', tenant_id: 'acme', details: '{"id": "t1"}' })
          .execute()
        const schedule = await db.selectFrom('schedules').selectAll().executeTakeFirstOrThrow()
        expect(schedule).toMatchObject({
          timezone: 'UTC',
          misfire: 'run-once',
          paused: false,
          input: null,
          options: {},
        })
        const audit = await db.selectFrom('audit_log').selectAll().executeTakeFirstOrThrow()
        expect(audit.details).toEqual({ id: 't1' })
      } finally {
        await db.destroy()
      }
    })
  })
}
