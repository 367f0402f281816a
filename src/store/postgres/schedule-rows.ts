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

  /**
   * One statement: insert, or change the definition of the caller's tenant's schedule. The row's
   * state is read and kept inside the statement (under its row lock), never from an earlier read:
   * `paused`, `last_run_at` and `created_at` stay; the pending tick stays too unless the expression
   * or time zone changed (then `next_run_at` of `row` is taken, or null while paused). So a pause,
   * a resume or a scheduler's advance that commits first is never undone. Null: the id belongs to
   * another tenant (nothing changed).
   */
  async upsert(row: ScheduleRow): Promise<ScheduleRow | null> {
    const values = this.values(row)
    const current = (column: string) => sql.ref(`schedules.${column}`)
    const stored = await this.db
      .withSchema(this.schema)
      .insertInto('schedules')
      .values(values)
      .onConflict((oc) =>
        oc
          .columns(['queue', 'id'])
          .doUpdateSet((eb) => ({
            task_name: eb.ref('excluded.task_name'),
            cron: eb.ref('excluded.cron'),
            timezone: eb.ref('excluded.timezone'),
            input: eb.ref('excluded.input'),
            misfire: eb.ref('excluded.misfire'),
            options: eb.ref('excluded.options'),
            updated_at: eb.ref('excluded.updated_at'),
            next_run_at: sql<Date | null>`case
              when ${current('paused')} then null
              when ${current('cron')} = excluded.cron and ${current('timezone')} = excluded.timezone
                and ${current('next_run_at')} is not null then ${current('next_run_at')}
              else excluded.next_run_at end`,
          }))
          .where(sql<boolean>`${current('tenant_id')} = excluded.tenant_id`),
      )
      .returning(COLUMNS)
      .returning(sql<string>`input::text`.as('input'))
      .executeTakeFirst()
    return stored ? toRow(stored) : null
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

  /** Pauses: one UPDATE; the pending tick goes (a resume picks the next future one). */
  async pause(id: string, at: number): Promise<boolean> {
    const r = await this.db
      .withSchema(this.schema)
      .updateTable('schedules')
      .set({ paused: true, next_run_at: null, updated_at: new Date(at) })
      .where('queue', '=', this.queue)
      .where('id', '=', id)
      .executeTakeFirst()
    return Number(r.numUpdatedRows) > 0
  }

  /**
   * Resumes a paused schedule at `next`, only while it is paused and still has the expression and
   * time zone `next` was computed from (compare and set). False otherwise, including no such row.
   */
  async resume(
    id: string,
    expect: { cron: string; timezone: string },
    next: number | null,
    at: number,
  ): Promise<boolean> {
    const r = await this.db
      .withSchema(this.schema)
      .updateTable('schedules')
      .set({ paused: false, next_run_at: date(next), updated_at: new Date(at) })
      .where('queue', '=', this.queue)
      .where('id', '=', id)
      .where('paused', '=', true)
      .where('cron', '=', expect.cron)
      .where('timezone', '=', expect.timezone)
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
