/** Turns a task hash (short field names, see lua/common.lua) into a TaskRecord. */

import { type AttemptRecord, type ErrorInfo, PRIORITIES, type TaskStatus } from '../../task/model.js'
import type { TaskRecord } from '../broker.js'

const num = (v: string | undefined): number | undefined =>
  v === undefined || v === '' ? undefined : Number(v)

export function decodeTask(id: string, h: Record<string, string>): TaskRecord | null {
  if (h.s === undefined) return null
  const history: AttemptRecord[] = h.h ? h.h.split('\n').map((line) => JSON.parse(line) as AttemptRecord) : []
  return {
    id,
    name: h.n ?? '',
    tenantId: h.t ?? '',
    payload: h.d ?? '',
    priority: PRIORITIES[Number(h.p)] ?? 'normal',
    status: h.s as TaskStatus,
    attempt: Number(h.a ?? 0),
    maxRetries: Number(h.mr ?? 0),
    timeoutMs: Number(h.to ?? 0),
    createdAt: Number(h.ca),
    runAt: Number(h.ra),
    startedAt: num(h.sa),
    finishedAt: num(h.fa),
    result: h.r,
    error: h.e ? (JSON.parse(h.e) as ErrorInfo) : undefined,
    history,
    workerId: h.w || undefined,
    idempotencyKey: h.ik || undefined,
    lockKey: h.lk || undefined,
    group: h.g || undefined,
    deferredBy: h.db || undefined,
    deferredUntil: h.db ? num(h.du) : undefined,
    progress: h.pg || undefined,
  }
}

/** A flat [field, value, field, value ...] reply (HGETALL from Lua) as an object. */
export function pairsToObject(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!
  return out
}
