/**
 * The Redis layout of one queue. Every key carries the hash tag `{<queue>}`, so all of a queue's
 * keys live in one cluster slot and each Lua script touches one slot only.
 */
import { TaskloomError } from '../../errors.js'

export interface QueueKeys {
  prefix: string
  /** The nine keys every script receives, in the order common.lua documents. */
  script: readonly string[]
  ready: readonly string[]
  delayed: string
  leases: string
  dlq: string
  marker: string
  task(id: string): string
  /** Cron schedules: next fire time by schedule id (sorted set), and until when it is complete. */
  scheduleDue: string
  scheduleHorizon: string
  /** Held (SET NX PX) by the one scheduler that refills `scheduleDue` from the store. */
  scheduleRefill: string
  /** Task definitions: one cached record per name, and a version bumped on every change. */
  definition(name: string): string
  definitionsVersion: string
  /** Pub/sub channel of queue events (JSON messages, e.g. { type: 'definition', name }). */
  events: string
}

export function queueKeys(queueName: string): QueueKeys {
  if (!/^[A-Za-z0-9._:-]{1,200}$/.test(queueName)) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      `invalid queue name ${JSON.stringify(queueName)}: use 1-200 letters, digits, '.', '_', ':' or '-'`,
    )
  }
  const prefix = `tl:{${queueName}}:`
  const ready = [0, 1, 2, 3].map((p) => `${prefix}ready:${p}`)
  const delayed = `${prefix}delayed`
  const leases = `${prefix}leases`
  const dlq = `${prefix}dlq`
  const marker = `${prefix}marker`
  return {
    prefix,
    script: [...ready, delayed, leases, dlq, marker, `${prefix}fence`],
    ready,
    delayed,
    leases,
    dlq,
    marker,
    task: (id) => `${prefix}task:${id}`,
    scheduleDue: `${prefix}sched:due`,
    scheduleHorizon: `${prefix}sched:horizon`,
    scheduleRefill: `${prefix}sched:refill`,
    definition: (name) => `${prefix}def:${name}`,
    definitionsVersion: `${prefix}def-version`,
    events: `${prefix}events`,
  }
}
