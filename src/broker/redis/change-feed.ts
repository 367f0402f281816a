/**
 * Reads the change feed stream (`tl:{queue}:changes`) as consumer group `store`: the scripts append
 * one entry per call, the store flusher reads, applies and acknowledges. Entries a dead consumer
 * left unacknowledged are taken over with XAUTOCLAIM once idle for `reclaimAfterMs`; a live
 * consumer that takes longer to apply them keeps them with `hold`.
 */

import type { AttemptRecord, ErrorInfo, TaskChange, TaskOutput } from '../../task/model.js'
import type { ChangeBatch } from '../broker.js'
import { bounded, type RedisClient } from './connection.js'

const GROUP = 'store'

type RawChange = Omit<TaskChange, 'error' | 'failedAttempt'> & { error?: string; failedAttempt?: string }
type StreamEntry = [id: string, fields: string[]]

export class ChangeFeedReader {
  private groupReady = false
  private lastReclaim = 0

  constructor(
    private readonly redis: RedisClient,
    private readonly stream: string,
    /** Bounds the acknowledging MULTI (see `bounded`). */
    private readonly timeoutMs: number,
  ) {}

  async read(
    blocking: RedisClient,
    consumer: string,
    max: number,
    blockMs: number,
    reclaimAfterMs: number,
  ): Promise<ChangeBatch> {
    try {
      return await this.readOnce(blocking, consumer, max, blockMs, reclaimAfterMs)
    } catch (err) {
      // A Redis that restarted empty lost the group with the stream: create it again, from the
      // start of the stream (a script may already have written new entries to it).
      if (!(err instanceof Error) || !err.message.includes('NOGROUP')) throw err
      this.groupReady = false
      return this.readOnce(blocking, consumer, max, blockMs, reclaimAfterMs)
    }
  }

  private async readOnce(
    blocking: RedisClient,
    consumer: string,
    max: number,
    blockMs: number,
    reclaimAfterMs: number,
  ): Promise<ChangeBatch> {
    await this.ensureGroup()
    if (Date.now() - this.lastReclaim >= Math.min(reclaimAfterMs, 1000)) {
      this.lastReclaim = Date.now()
      const reply = (await this.redis.xautoclaim(
        this.stream,
        GROUP,
        consumer,
        reclaimAfterMs,
        '0-0',
        'COUNT',
        max,
      )) as [string, StreamEntry[]]
      if (reply[1].length > 0) return decode(reply[1])
    }
    const args: (string | number)[] = ['GROUP', GROUP, consumer, 'COUNT', max]
    if (blockMs > 0) args.push('BLOCK', blockMs)
    args.push('STREAMS', this.stream, '>')
    const reply = (await bounded(blocking.call('XREADGROUP', ...args), blockMs + this.timeoutMs)) as
      | [string, StreamEntry[]][]
      | null
    return decode(reply?.[0]?.[1] ?? [])
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    await bounded(
      this.redis
        .multi()
        .xack(this.stream, GROUP, ...ids)
        .xdel(this.stream, ...ids)
        .exec(),
      this.timeoutMs,
    )
  }

  /**
   * Resets the idle time of entries `consumer` still works on (XCLAIM with min-idle 0, JUSTID), so
   * that XAUTOCLAIM leaves them to it. Entries acknowledged meanwhile are not in the group's pending
   * list, and XCLAIM skips them.
   */
  async hold(consumer: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    await this.redis.xclaim(this.stream, GROUP, consumer, 0, ...ids, 'JUSTID')
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return
    try {
      await this.redis.xgroup('CREATE', this.stream, GROUP, '0', 'MKSTREAM')
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('BUSYGROUP')) throw err
    }
    this.groupReady = true
  }
}

function decode(entries: StreamEntry[]): ChangeBatch {
  const ids: string[] = []
  const changes: TaskChange[] = []
  const outputs: TaskOutput[] = []
  for (const [id, fields] of entries) {
    ids.push(id)
    // Deleted entries still listed by XAUTOCLAIM come back without fields.
    const json = fields?.[1]
    if (!json) continue
    if (fields[0] === 'o') {
      decodeOutputs(json, outputs)
      continue
    }
    for (const raw of JSON.parse(json) as RawChange[]) {
      const { error, failedAttempt, ...rest } = raw
      const change: TaskChange = { ...rest }
      if (error) change.error = JSON.parse(error) as ErrorInfo
      if (failedAttempt) change.failedAttempt = JSON.parse(failedAttempt) as AttemptRecord
      changes.push(change)
    }
  }
  return outputs.length > 0 ? { ids, changes, outputs } : { ids, changes }
}

type RawOutput = { id: string; token: string; at: number; progress?: string; seq?: number; line?: string }

/** A report.lua entry (field 'o'): progress values and log lines, one object each. */
function decodeOutputs(json: string, into: TaskOutput[]): void {
  for (const raw of JSON.parse(json) as RawOutput[]) {
    const token = Number(raw.token)
    if (raw.progress !== undefined) into.push({ id: raw.id, token, at: raw.at, progress: raw.progress })
    else
      into.push({
        id: raw.id,
        token,
        at: raw.at,
        logs: [{ token, seq: raw.seq!, at: raw.at, line: raw.line! }],
      })
  }
}
