import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PGliteDialect } from '../../src/store/postgres/pglite-dialect.js'
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js'
import { newRow } from './fixtures.js'

interface Db {
  items: { n: number }
}

describe('PGliteDialect', () => {
  let pglite: PGlite
  let db: Kysely<Db>

  beforeAll(async () => {
    pglite = await PGlite.create()
    db = new Kysely<Db>({ dialect: new PGliteDialect({ pglite }) })
    await sql`create table items (n integer)`.execute(db)
  })

  afterAll(async () => {
    await db.destroy()
    expect(pglite.closed).toBe(false)
    await pglite.close()
  })

  it('keeps other queries out of a transaction until it commits', async () => {
    const order: string[] = []
    const trx = db.transaction().execute(async (tx) => {
      await tx.insertInto('items').values({ n: 1 }).execute()
      await new Promise((resolve) => setTimeout(resolve, 30))
      await tx.insertInto('items').values({ n: 2 }).execute()
      order.push('commit')
    })
    await new Promise((resolve) => setTimeout(resolve, 5))
    const outside = db
      .selectFrom('items')
      .select(sql<number>`count(*)::int`.as('count'))
      .executeTakeFirstOrThrow()
      .then((row) => {
        order.push(`read ${row.count}`)
      })
    const direct = pglite.query<{ count: number }>('select count(*)::int as count from items').then((r) => {
      order.push(`direct ${r.rows[0]?.count}`)
    })
    await Promise.all([trx, outside, direct])
    expect(order[0]).toBe('commit')
    expect(order.slice(1).sort()).toEqual(['direct 2', 'read 2'])
  })

  it('rolls a failed transaction back', async () => {
    await sql`delete from items`.execute(db)
    await expect(
      db.transaction().execute(async (tx) => {
        await tx.insertInto('items').values({ n: 3 }).execute()
        throw new Error('nope')
      }),
    ).rejects.toThrow('nope')
    expect(await db.selectFrom('items').selectAll().execute()).toEqual([])
  })

  it('reports affected rows', async () => {
    await db
      .insertInto('items')
      .values([{ n: 1 }, { n: 2 }, { n: 3 }])
      .execute()
    const result = await db.updateTable('items').set({ n: 0 }).where('n', '>', 1).executeTakeFirst()
    expect(result.numUpdatedRows).toBe(2n)
  })
})

describe('embedded PGlite store', () => {
  it('keeps tasks in a data directory across reopening', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'taskloom-pglite-'))
    try {
      const row = newRow()
      const first = await openPostgresStore({ postgres: { dataDir } })
      expect(first.kind).toBe('pglite')
      await first.insertTasks([row])
      await first.close()

      const second = await openPostgresStore({ postgres: { dataDir } })
      expect((await second.get(row.id))?.id).toBe(row.id)
      await second.close()
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('rejects a connection string that is not a postgres URL', async () => {
    await expect(openPostgresStore({ postgres: 'mysql://localhost/db' })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    })
  })
})
