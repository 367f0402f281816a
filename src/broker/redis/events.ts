/**
 * Task output and queue events on Redis (issue 17): decoding what lua/report.lua and the `event`
 * function of lua/common.lua write, and the blocking connections that read the event stream.
 */
import type { ErrorInfo, QueueEventRecord, TaskLogLine } from '../../task/model.js'
import type { RedisClient, RedisHandle } from './connection.js'

/** The keys of a queue's event stream, its listeners' interest, and a task's log list. */
export const eventKeys = (prefix: string) => ({
  stream: `${prefix}ev`,
  interest: `${prefix}ev:on`,
  logs: (id: string) => `${prefix}logs:${id}`,
})

/** A log list entry: the JSON array [token, seq, at, line]. */
export function decodeLogLine(entry: string): TaskLogLine {
  const [token, seq, at, line] = JSON.parse(entry) as [number, number, number, string]
  return { token, seq, at, line }
}

type StreamEntry = [id: string, fields: string[]]

interface RawEvent {
  type: QueueEventRecord['type']
  taskId: string
  name: string
  tenantId: string
  attempt: number
  at: number
  runAt?: number
  error?: string
  progress?: string
}

export function decodeEvents(entries: readonly StreamEntry[]): QueueEventRecord[] {
  const out: QueueEventRecord[] = []
  for (const [eventId, fields] of entries) {
    const json = fields[fields.indexOf('e') + 1]
    if (!json) continue
    const raw = JSON.parse(json) as RawEvent
    const event: QueueEventRecord = {
      eventId,
      type: raw.type,
      taskId: raw.taskId,
      name: raw.name,
      tenantId: raw.tenantId,
      attempt: raw.attempt,
      at: raw.at,
    }
    if (raw.runAt !== undefined) event.runAt = raw.runAt
    if (raw.error !== undefined) event.error = JSON.parse(raw.error) as ErrorInfo
    if (raw.progress !== undefined) event.progress = raw.progress
    out.push(event)
  }
  return out
}

/**
 * Blocking reads of the event stream, each on a connection of its own (a blocked XREAD holds its
 * connection): idle connections are kept for the next read; an aborted read drops its connection.
 */
export class EventReaders {
  private readonly idle: RedisClient[] = []
  private readonly busy = new Set<RedisClient>()

  constructor(
    private readonly handle: RedisHandle,
    private readonly stream: string,
  ) {}

  async read(after: string, max: number, blockMs: number, signal?: AbortSignal): Promise<QueueEventRecord[]> {
    if (signal?.aborted) return []
    const conn = this.idle.pop() ?? this.handle.duplicate()
    this.busy.add(conn)
    const abort = () => conn.disconnect()
    signal?.addEventListener('abort', abort, { once: true })
    try {
      const args: (string | number)[] = ['COUNT', max]
      if (blockMs > 0) args.push('BLOCK', blockMs)
      args.push('STREAMS', this.stream, after)
      const reply = (await conn.call('XREAD', ...args)) as [string, StreamEntry[]][] | null
      return decodeEvents(reply?.[0]?.[1] ?? [])
    } catch (err) {
      if (signal?.aborted) return []
      conn.disconnect()
      throw err
    } finally {
      signal?.removeEventListener('abort', abort)
      this.busy.delete(conn)
      if (conn.status === 'ready' && !signal?.aborted) this.idle.push(conn)
    }
  }

  close(): void {
    for (const conn of [...this.idle, ...this.busy]) conn.disconnect()
    this.idle.length = 0
    this.busy.clear()
  }
}
