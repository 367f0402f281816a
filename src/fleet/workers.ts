/** `queue.workers()`: the fleet as the heartbeats show it. */
import type { Broker, WorkerBeat } from '../broker/broker.js'

export interface WorkerInfo {
  id: string
  /** UNHEALTHY once the worker missed 3 heartbeats (its leases were then reclaimed). */
  status: 'ACTIVE' | 'IDLE' | 'UNHEALTHY'
  lastHeartbeat: Date
  tasksInHand: number
  tasksProcessed: number
  hostname: string
  pid: number
  concurrency: number
  startedAt: Date
}

/** A worker is silent once 3 of its heartbeat intervals passed without a beat. */
export const MISSED_BEATS = 3

export function toWorkerInfo(beat: WorkerBeat, now: number): WorkerInfo {
  const silent = beat.status === 'unhealthy' || now > beat.lastHeartbeat + MISSED_BEATS * beat.heartbeatMs
  return {
    id: beat.id,
    status: silent ? 'UNHEALTHY' : beat.status === 'active' ? 'ACTIVE' : 'IDLE',
    lastHeartbeat: new Date(beat.lastHeartbeat),
    tasksInHand: beat.tasksInHand,
    tasksProcessed: beat.tasksProcessed,
    hostname: beat.hostname,
    pid: beat.pid,
    concurrency: beat.concurrency,
    startedAt: new Date(beat.startedAt),
  }
}

/** Healthy workers first, then by id. */
export async function listWorkers(broker: Broker, now: number): Promise<WorkerInfo[]> {
  const beats = await broker.listWorkers()
  const order = { ACTIVE: 0, IDLE: 1, UNHEALTHY: 2 }
  return beats
    .map((b) => toWorkerInfo(b, now))
    .sort((a, b) => order[a.status] - order[b.status] || a.id.localeCompare(b.id))
}
