/**
 * `queue.logs(id)` (issue 17): a task's log lines, merged from the broker (while it holds the task)
 * and the store (durable mode: every line the change feed delivered, kept after Redis forgets the
 * task or loses its data). A line is named by (token, seq), so one seen in both counts once.
 */
import { TaskloomError } from '../errors.js'
import type { TaskLogLine } from '../task/model.js'

export interface LogsOptions {
  /** The last `tail` lines (wins over offset and limit). */
  tail?: number
  /** Lines to skip from the oldest kept. Default 0. */
  offset?: number
  /** Default 1,000, at most 10,000. */
  limit?: number
  /** Only this tenant's task (REST): another tenant's is NOT_FOUND. */
  tenantId?: string
}

export interface TaskLogEntry {
  line: string
  at: Date
  /** The fencing token of the attempt that wrote it. */
  token: number
  /** Its number within the task (from 1 for the task's first line; see TaskLogLine). */
  seq: number
}

export interface TaskLogPage {
  lines: TaskLogEntry[]
  /** Lines kept for the task. */
  total: number
  offset: number
}

export async function taskLogs(
  live: () => Promise<TaskLogLine[] | null>,
  stored: (() => Promise<TaskLogLine[]>) | undefined,
  options: LogsOptions,
): Promise<TaskLogPage> {
  const { tail, offset, limit } = checkLogsOptions(options)
  const [fromBroker, fromStore] = await Promise.all([live(), stored?.() ?? Promise.resolve([])])
  const byKey = new Map<string, TaskLogLine>()
  for (const line of [...fromStore, ...(fromBroker ?? [])]) byKey.set(`${line.token}:${line.seq}`, line)
  const all = [...byKey.values()].sort((a, b) => a.token - b.token || a.seq - b.seq)
  const start = tail === undefined ? offset : Math.max(0, all.length - tail)
  const end = tail === undefined ? start + limit : all.length
  return {
    lines: all
      .slice(start, end)
      .map((l) => ({ line: l.line, at: new Date(l.at), token: l.token, seq: l.seq })),
    total: all.length,
    offset: start,
  }
}

function checkLogsOptions(o: LogsOptions): { tail: number | undefined; offset: number; limit: number } {
  const int = (v: unknown, min: number, max: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
  const bad = (path: string, message: string) =>
    new TaskloomError('INVALID_OPTIONS', `${path} ${message}`, { issues: [{ path, message }] })
  if (o.tail !== undefined && !int(o.tail, 1, 10_000)) throw bad('tail', 'must be an integer from 1 to 10000')
  if (o.offset !== undefined && !int(o.offset, 0, 1_000_000))
    throw bad('offset', 'must be a non-negative integer')
  if (o.limit !== undefined && !int(o.limit, 1, 10_000))
    throw bad('limit', 'must be an integer from 1 to 10000')
  return { tail: o.tail, offset: o.offset ?? 0, limit: o.limit ?? 1000 }
}
