/**
 * Schedules and task definitions in PostgreSQL: plain indexed statements, one per call. The
 * scheduler reads due schedules by `next_run_at` (partial index) and advances each with a compare and
 * set on it, so two schedulers can never both move the same schedule past the same tick.
 */
import { type Kysely, type Selectable, sql } from 'kysely'
import type { DefinitionRow, ScheduleFilter, ScheduleRow } from '../store.js'
import type { Database, SchedulesTable } from './tables.js'
import { timestamp } from './task-rows.js'

type Db = Kysely<Database>

const ms = (d: Date | null): number | null => (d === null ? null : d.getTime())
const date = (n: number | null): Date | null => (n === null ? null : new Date(n))

const COLUMNS = [
  'id',
  'tenant_id',
  'task_name',
  'cron',
  'timezone',
  'misfire',
  'paused',
  'options',
  'next_run_at',
  'last_run_at',
  'created_at',
  'updated_at',
] as const

type Selected = Pick<Selectable<SchedulesTable>, (typeof COLUMNS)[number]> & { input: string }

function toRow(r: Selected): ScheduleRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    taskName: r.task_name,
    cron: r.cron,
    timezone: r.timezone,
    input: r.input,
    misfire: r.misfire,
    paused: r.paused,
    options: (r.options ?? {}) as ScheduleRow['options'],
    nextRunAt: ms(r.next_run_at),
    lastRunAt: ms(r.last_run_at),
    createdAt: r.created_at.getTime(),
    updatedAt: r.updated_at.getTime(),
  }
}

export class ScheduleRows {
  constructor(
    private readonly db: Db,
    private readonly schema: string,
    private readonly queue: string,
  ) {}

  private select() {
    return this.db
      .withSchema(this.schema)
      .selectFrom('schedules')
      .select(COLUMNS)
      .select(sql<string>`input::text`.as('input'))
      .where('queue', '=', this.queue)
  }

  async upsert(row: ScheduleRow): Promise<ScheduleRow> {
    const values = this.values(row)
    const { queue: _q, id: _id, created_at: _c, last_run_at: _l, ...changes } = values
    const stored = await this.db
      .withSchema(this.schema)
      .insertInto('schedules')
      .values(values)
      .onConflict((oc) => oc.columns(['queue', 'id']).doUpdateSet(changes))
      .returning(COLUMNS)
      .returning(sql<string>`input::text`.as('input'))
      .executeTakeFirstOrThrow()
    return toRow(stored)
  }

  async insert(row: ScheduleRow): Promise<ScheduleRow | null> {
    const stored = await this.db
      .withSchema(this.schema)
      .insertInto('schedules')
      .values(this.values(row))
      .onConflict((oc) => oc.columns(['queue', 'id']).doNothing())
      .returning(COLUMNS)
      .returning(sql<string>`input::text`.as('input'))
      .executeTakeFirst()
    return stored ? toRow(stored) : null
  }

  private values(row: ScheduleRow) {
    return {
      queue: this.queue,
      id: row.id,
      tenant_id: row.tenantId,
      task_name: row.taskName,
      cron: row.cron,
      timezone: row.timezone,
      input: row.input,
      misfire: row.misfire,
      paused: row.paused,
      options: JSON.stringify(row.options),
      next_run_at: date(row.nextRunAt),
      last_run_at: date(row.lastRunAt),
      created_at: new Date(row.createdAt),
      updated_at: new Date(row.updatedAt),
    }
  }

  async get(id: string): Promise<ScheduleRow | null> {
    const r = await this.select().where('id', '=', id).executeTakeFirst()
    return r ? toRow(r) : null
  }

  async list(filter: ScheduleFilter = {}): Promise<ScheduleRow[]> {
    let q = this.select()
    if (filter.tenantId !== undefined) q = q.where('tenant_id', '=', filter.tenantId)
    const rows = await q
      .orderBy('created_at')
      .orderBy('id')
      .limit(filter.limit ?? 50)
      .offset(filter.offset ?? 0)
      .execute()
    return rows.map(toRow)
  }

  async setPaused(id: string, paused: boolean, nextRunAt: number | null, at: number): Promise<boolean> {
    const r = await this.db
      .withSchema(this.schema)
      .updateTable('schedules')
      .set({ paused, next_run_at: date(nextRunAt), updated_at: new Date(at) })
      .where('queue', '=', this.queue)
      .where('id', '=', id)
      .executeTakeFirst()
    return Number(r.numUpdatedRows) > 0
  }

  async remove(id: string): Promise<boolean> {
    const r = await this.db
      .withSchema(this.schema)
      .deleteFrom('schedules')
      .where('queue', '=', this.queue)
      .where('id', '=', id)
      .executeTakeFirst()
    return Number(r.numDeletedRows) > 0
  }

  async due(before: number, limit: number): Promise<ScheduleRow[]> {
    const rows = await this.select()
      .where('next_run_at', 'is not', null)
      .where('next_run_at', '<=', timestamp(before))
      .where('paused', '=', false)
      .orderBy('next_run_at')
      .limit(limit)
      .execute()
    return rows.map(toRow)
  }

  async advance(id: string, from: number, next: number | null, lastRunAt: number | null): Promise<boolean> {
    const set = lastRunAt === null ? {} : { last_run_at: new Date(lastRunAt) }
    const r = await this.db
      .withSchema(this.schema)
      .updateTable('schedules')
      .set({ next_run_at: date(next), ...set })
      .where('queue', '=', this.queue)
      .where('id', '=', id)
      .where('paused', '=', false)
      .where('next_run_at', '=', new Date(from))
      .executeTakeFirst()
    return Number(r.numUpdatedRows) > 0
  }
}

export class DefinitionRows {
  constructor(
    private readonly db: Db,
    private readonly schema: string,
    private readonly queue: string,
  ) {}

  async put(row: DefinitionRow): Promise<boolean> {
    const values = {
      queue: this.queue,
      name: row.name,
      input_schema: JSON.stringify(row.inputSchema),
      defaults: JSON.stringify(row.defaults),
      version: row.version,
      updated_at: new Date(row.updatedAt),
    }
    const { queue: _q, name: _n, ...changes } = values
    const r = await this.db
      .withSchema(this.schema)
      .insertInto('task_definitions')
      .values(values)
      .onConflict((oc) =>
        oc
          .columns(['queue', 'name'])
          .doUpdateSet(changes)
          .where(sql<boolean>`${sql.id('task_definitions', 'version')} <> excluded.version`),
      )
      .executeTakeFirst()
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0
  }

  private select() {
    return this.db
      .withSchema(this.schema)
      .selectFrom('task_definitions')
      .select(['name', 'input_schema', 'defaults', 'version', 'updated_at'])
      .where('queue', '=', this.queue)
  }

  async get(name: string): Promise<DefinitionRow | null> {
    const r = await this.select().where('name', '=', name).executeTakeFirst()
    return r ? toDefinition(r) : null
  }

  async list(): Promise<DefinitionRow[]> {
    return (await this.select().orderBy('name').execute()).map(toDefinition)
  }
}

function toDefinition(r: {
  name: string
  input_schema: unknown
  defaults: unknown
  version: string
  updated_at: Date
}): DefinitionRow {
  return {
    name: r.name,
    inputSchema: r.input_schema,
    defaults: r.defaults as DefinitionRow['defaults'],
    version: r.version,
    updatedAt: r.updated_at.getTime(),
  }
}
