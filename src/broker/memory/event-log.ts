/**
 * The in-process broker's queue events (issue 17): the last `maxLen` events in order, each with an
 * id that grows ("<n>-0", compared as numbers), written while a listener's interest lasts, read after
 * an id with an optional wait. The Redis twin is the stream of lua/common.lua's `event`.
 */
import type { QueueEventRecord } from '../../task/model.js'
import { Waiters } from './waiters.js'

type NewEvent = Omit<QueueEventRecord, 'eventId'>

const seqOf = (id: string): number => Number(id.split('-')[0]) || 0

export class EventLog {
  private readonly events: QueueEventRecord[] = []
  private next = 1
  private maxLen = 0
  /** Wall-clock time until which events are written (a listener's interest, as Redis's PX). */
  private until = 0
  private readonly waiters = new Waiters()

  listen(keepMs: number, maxLen: number): void {
    this.until = Math.max(this.until, Date.now() + keepMs)
    this.maxLen = maxLen
  }

  add(event: NewEvent): void {
    if (Date.now() > this.until) return
    this.events.push({ ...event, eventId: `${this.next++}-0` })
    if (this.events.length > this.maxLen) this.events.splice(0, this.events.length - this.maxLen)
    this.waiters.wakeAll()
  }

  lastId(): string {
    return this.events.at(-1)?.eventId ?? '0-0'
  }

  async read(after: string, max: number, blockMs: number, signal?: AbortSignal): Promise<QueueEventRecord[]> {
    let out = this.after(after, max)
    if (out.length === 0 && blockMs > 0) {
      await this.waiters.wait(blockMs, signal ?? new AbortController().signal)
      out = this.after(after, max)
    }
    return out
  }

  close(): void {
    this.waiters.wakeAll()
  }

  private after(id: string, max: number): QueueEventRecord[] {
    const from = seqOf(id)
    const first = this.events.findIndex((e) => seqOf(e.eventId) > from)
    if (first < 0) return []
    return this.events.slice(first, first + max).map((e) => structuredClone(e))
  }
}
