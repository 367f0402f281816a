/**
 * `queue.definitions`: the registry of task definitions (name, JSON Schema of the input, defaults)
 * that workers write on start, so a process without the handler code (an API server) can reject
 * unknown task names, validate inputs and apply defaults.
 *
 * Reads go through two caches: in memory (L1) and Redis (L2), both with a TTL (default 5 minutes).
 * A registration that changes a definition deletes its L2 entry, bumps a version key and publishes
 * the name on the queue's event channel; every process drops its L1 entry on the message, and also
 * when it sees the version move (checked at most once a second), so a missed message costs a second
 * of staleness, not five minutes. Without Redis the L1 cache alone serves (one process per queue).
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { RedisClient } from '../broker/redis/connection.js'
import type { QueueKeys } from '../broker/redis/keys.js'
import { TaskloomError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { DefinitionRow, Store } from '../store/store.js'
import type { TaskDefinition } from '../task/define-task.js'
import { textFault } from '../task/text.js'

export interface TaskDefinitionInfo {
  name: string
  /** JSON Schema (draft 2020-12) of the task's input. */
  inputSchema: unknown
  defaults: DefinitionRow['defaults']
  /** A hash of schema and defaults. */
  version: string
  updatedAt: Date
}

export interface Definitions {
  /** Records the definitions (a worker does this on start); unchanged ones are not rewritten. */
  register(...tasks: TaskDefinition<any, any>[]): Promise<void>
  get(name: string): Promise<TaskDefinitionInfo | null>
  /** Every registered definition, by name (read from the store). */
  list(): Promise<TaskDefinitionInfo[]>
  /**
   * A TaskDefinition rebuilt from the registered record: it validates input against the stored JSON
   * Schema and carries the stored defaults. Null for a name no worker registered.
   */
  resolve(name: string): Promise<TaskDefinition<unknown, unknown> | null>
}

export interface DefinitionsHost {
  store(): Promise<Store>
  /** Present in Redis mode: the queue's client, a way to open a subscriber, and its keys. */
  redis?: { client: RedisClient; subscriber(): RedisClient; keys: QueueKeys } | undefined
  ttlMs: number
  logger: Logger
}

interface L1Entry {
  row: DefinitionRow | null
  expiresAt: number
}

/** SET the L2 entry only if no definition changed since the read began (version unchanged). */
const SET_IF_VERSION = `
if (redis.call('GET', KEYS[2]) or '0') == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
end
return 1`

const VERSION_CHECK_MS = 1000

export class DefinitionCache implements Definitions {
  private readonly l1 = new Map<string, L1Entry>()
  private readonly rebuilt = new Map<string, { version: string; task: TaskDefinition<unknown, unknown> }>()
  private seenVersion = '0'
  private checkedAt = 0
  private subscriber: RedisClient | undefined
  private subscribed: Promise<void> | undefined

  constructor(private readonly host: DefinitionsHost) {}

  async register(...tasks: TaskDefinition<any, any>[]): Promise<void> {
    const rows = tasks.map(toRow)
    const store = await this.host.store()
    for (const row of rows) {
      if (!(await store.putDefinition(row))) continue
      this.forget(row.name)
      const redis = this.host.redis
      if (redis) {
        const { client, keys } = redis
        await client
          .multi()
          .del(keys.definition(row.name))
          .incr(keys.definitionsVersion)
          .publish(keys.events, JSON.stringify({ type: 'definition', name: row.name }))
          .exec()
      }
    }
  }

  async get(name: string): Promise<TaskDefinitionInfo | null> {
    if (!possibleName(name)) return null
    const row = await this.lookup(name)
    return row ? toInfo(row) : null
  }

  async list(): Promise<TaskDefinitionInfo[]> {
    const store = await this.host.store()
    return (await store.listDefinitions()).map(toInfo)
  }

  async resolve(name: string): Promise<TaskDefinition<unknown, unknown> | null> {
    if (!possibleName(name)) return null
    const row = await this.lookup(name)
    if (!row) return null
    const known = this.rebuilt.get(name)
    if (known && known.version === row.version) return known.task
    let input: z.ZodType
    try {
      input = z.fromJSONSchema(row.inputSchema as Parameters<typeof z.fromJSONSchema>[0])
    } catch (err) {
      throw new TaskloomError(
        'INTERNAL',
        `task ${name}: the registered input schema cannot be rebuilt: ${(err as Error).message}`,
        { cause: err },
      )
    }
    const task = Object.freeze({
      name,
      input: input as z.ZodType<unknown, unknown>,
      defaults: Object.freeze({ ...row.defaults }),
    })
    this.rebuilt.set(name, { version: row.version, task })
    return task
  }

  /** Stops listening for changes. */
  async close(): Promise<void> {
    const sub = this.subscriber
    this.subscriber = undefined
    if (sub) {
      try {
        await sub.quit()
      } catch {
        sub.disconnect()
      }
    }
  }

  private forget(name: string): void {
    this.l1.delete(name)
    this.rebuilt.delete(name)
  }

  private async lookup(name: string): Promise<DefinitionRow | null> {
    const now = Date.now()
    await this.listen()
    await this.checkVersion(now)
    const hit = this.l1.get(name)
    if (hit && hit.expiresAt > now) return hit.row
    const row = await this.fetch(name)
    this.l1.set(name, { row, expiresAt: Date.now() + this.host.ttlMs })
    return row
  }

  /** L2, then the store (filling L2 unless a definition changed meanwhile). */
  private async fetch(name: string): Promise<DefinitionRow | null> {
    const redis = this.host.redis
    const store = await this.host.store()
    if (!redis) return store.getDefinition(name)
    const { client, keys } = redis
    const [cached, version] = await client.mget(keys.definition(name), keys.definitionsVersion)
    if (cached) return JSON.parse(cached) as DefinitionRow | null
    const row = await store.getDefinition(name)
    await client.eval(
      SET_IF_VERSION,
      2,
      keys.definition(name),
      keys.definitionsVersion,
      JSON.stringify(row),
      version ?? '0',
      this.host.ttlMs,
    )
    return row
  }

  private async checkVersion(now: number): Promise<void> {
    const redis = this.host.redis
    if (!redis || now - this.checkedAt < VERSION_CHECK_MS) return
    this.checkedAt = now
    const version = (await redis.client.get(redis.keys.definitionsVersion)) ?? '0'
    if (version !== this.seenVersion) {
      this.seenVersion = version
      this.l1.clear()
    }
  }

  private listen(): Promise<void> {
    const redis = this.host.redis
    if (!redis) return Promise.resolve()
    this.subscribed ??= (async () => {
      const sub = redis.subscriber()
      this.subscriber = sub
      sub.on('message', (_channel: string, message: string) => {
        try {
          const event = JSON.parse(message) as { type?: string; name?: string }
          if (event.type === 'definition' && typeof event.name === 'string') this.forget(event.name)
        } catch {}
      })
      // Messages published while disconnected are lost: start over after a reconnect.
      sub.on('ready', () => this.l1.clear())
      await sub.subscribe(redis.keys.events)
    })().catch((err: unknown) => {
      this.subscribed = undefined
      this.host.logger.warn(
        { err },
        'could not subscribe to definition changes; relying on the version check',
      )
    })
    return this.subscribed
  }
}

/** The record of a TaskDefinition: its input's JSON Schema (zod's view of what submit accepts). */
export function toRow(task: TaskDefinition<any, any>): DefinitionRow {
  if (!task || typeof task.name !== 'string' || !task.input)
    throw new TaskloomError('INVALID_OPTIONS', 'definitions.register needs tasks made by defineTask()')
  let inputSchema: unknown
  try {
    inputSchema = z.toJSONSchema(task.input as z.ZodType, { io: 'input', unrepresentable: 'any' })
  } catch (err) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      `task ${task.name}: its input schema has no JSON Schema form: ${(err as Error).message}`,
      { cause: err },
    )
  }
  const defaults = { ...task.defaults }
  const version = createHash('sha256')
    .update(JSON.stringify({ inputSchema, defaults }))
    .digest('hex')
    .slice(0, 32)
  return { name: task.name, inputSchema, defaults, version, updatedAt: Date.now() }
}

function toInfo(row: DefinitionRow): TaskDefinitionInfo {
  return {
    name: row.name,
    inputSchema: row.inputSchema,
    defaults: row.defaults,
    version: row.version,
    updatedAt: new Date(row.updatedAt),
  }
}

/** A name no task can have (text the store could not even be asked about) names no task. */
function possibleName(name: unknown): name is string {
  return typeof name === 'string' && name.length >= 1 && name.length <= 200 && textFault(name) === null
}
