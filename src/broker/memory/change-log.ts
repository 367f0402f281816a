/**
 * The in-process change feed: entries in order, handed out once, handed out again when the
 * consumer did not acknowledge them in time, dropped when acknowledged.
 */
import type { TaskChange, TaskOutput } from '../../task/model.js'
import type { ChangeBatch } from '../broker.js'
import { Waiters } from './waiters.js'

interface Entry {
  id: string
  changes: TaskChange[]
  outputs: TaskOutput[]
  /** When it was last handed out (wall clock), or undefined if never. */
  handedOutAt: number | undefined
}

export class ChangeLog {
  private readonly entries = new Map<string, Entry>()
  private nextId = 1
  private batch: TaskChange[] = []
  private outputs: TaskOutput[] = []
  private readonly waiters = new Waiters()

  /** Collects one change of the current operation; `commit` writes them as one entry. */
  record(change: TaskChange): void {
    this.batch.push(change)
  }

  /** Collects progress or log lines of the current operation (see `Broker.report`). */
  recordOutput(output: TaskOutput): void {
    this.outputs.push(output)
  }

  commit(): void {
    if (this.batch.length === 0 && this.outputs.length === 0) return
    const id = String(this.nextId++)
    this.entries.set(id, { id, changes: this.batch, outputs: this.outputs, handedOutAt: undefined })
    this.batch = []
    this.outputs = []
    this.waiters.wakeAll()
  }

  async read(max: number, blockMs: number, reclaimAfterMs: number): Promise<ChangeBatch> {
    let out = this.take(max, reclaimAfterMs)
    if (out.ids.length === 0 && blockMs > 0) {
      await this.waiters.wait(blockMs, new AbortController().signal)
      out = this.take(max, reclaimAfterMs)
    }
    return out
  }

  ack(ids: readonly string[]): void {
    for (const id of ids) this.entries.delete(id)
  }

  /** Entries handed out and not acknowledged yet count as handed out now. */
  hold(ids: readonly string[]): void {
    const now = Date.now()
    for (const id of ids) {
      const entry = this.entries.get(id)
      if (entry?.handedOutAt !== undefined) entry.handedOutAt = now
    }
  }

  close(): void {
    this.waiters.wakeAll()
  }

  private take(max: number, reclaimAfterMs: number): ChangeBatch {
    const now = Date.now()
    const out: ChangeBatch = { ids: [], changes: [] }
    for (const entry of this.entries.values()) {
      if (out.ids.length >= max) break
      if (entry.handedOutAt !== undefined && now - entry.handedOutAt < reclaimAfterMs) continue
      entry.handedOutAt = now
      out.ids.push(entry.id)
      out.changes.push(...entry.changes.map((c) => structuredClone(c)))
      if (entry.outputs.length > 0) {
        out.outputs ??= []
        out.outputs.push(...entry.outputs.map((o) => structuredClone(o)))
      }
    }
    return out
  }
}
