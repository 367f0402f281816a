/**
 * Worker liveness for an orchestrator's probe: a worker is live unless, for longer than a threshold,
 * its own heartbeats have not gone through, its lease renewals have not gone through while it held
 * tasks, or its event loop was blocked. Those are what a restart can cure (a wedged connection, a
 * leaked promise chain, a handler that blocks the loop); the fleet reclaims such a worker's leases
 * anyway, and this tells Kubernetes to replace it.
 *
 * ```ts
 * createServer(livenessHandler(worker)).listen(9464) // 200 while live, 503 with the failing checks
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { TaskloomError } from '../errors.js'

export interface LivenessOptions {
  /**
   * How long heartbeats or lease renewals may fail, or the event loop stay blocked, before the worker
   * counts as dead. Default: 60,000 ms, and at least three heartbeat intervals.
   */
  thresholdMs?: number
}

export interface LivenessCheck {
  ok: boolean
  /** Since the last success (heartbeats, renewals) or the longest recent block (event loop), ms. */
  ms: number
}

export interface LivenessReport {
  live: boolean
  workerId: string
  /** The worker's state: `idle` (not started yet) counts as live, `closing` and `closed` do not. */
  state: 'idle' | 'running' | 'closing' | 'closed'
  thresholdMs: number
  checks: { heartbeat: LivenessCheck; leaseRenewals: LivenessCheck; eventLoop: LivenessCheck }
}

/** What a worker reports about itself (see Worker.liveness). */
export interface LivenessInputs {
  workerId: string
  state: LivenessReport['state']
  heartbeatMs: number
  /** When the last heartbeat went through (or the worker started). */
  lastHeartbeatAt: number
  /** When lease renewals last went through, or last had nothing to renew. */
  lastRenewalAt: number
  /** Longest event loop block seen lately, ms. */
  blockedMs: number
}

export function judgeLiveness(
  i: LivenessInputs,
  options: LivenessOptions = {},
  now = Date.now(),
): LivenessReport {
  const thresholdMs = options.thresholdMs ?? Math.max(60_000, 3 * i.heartbeatMs)
  if (!Number.isInteger(thresholdMs) || thresholdMs < 1) {
    throw new TaskloomError('INVALID_OPTIONS', 'thresholdMs must be a positive integer', {
      issues: [{ path: 'thresholdMs', message: 'a positive integer' }],
    })
  }
  const since = (at: number): LivenessCheck => {
    const ms = Math.max(0, now - at)
    return { ok: i.state !== 'running' || ms <= thresholdMs, ms }
  }
  const checks = {
    heartbeat: since(i.lastHeartbeatAt),
    leaseRenewals: since(i.lastRenewalAt),
    eventLoop: { ok: i.blockedMs <= thresholdMs, ms: i.blockedMs },
  }
  const alive = i.state === 'idle' || i.state === 'running'
  const live = alive && checks.heartbeat.ok && checks.leaseRenewals.ok && checks.eventLoop.ok
  return { live, workerId: i.workerId, state: i.state, thresholdMs, checks }
}

/**
 * A `node:http` request handler (also usable as Express middleware) answering 200 while every
 * given worker is live and 503 otherwise, with the reports as JSON. Mount it on the liveness
 * probe's path, or call it only for that path.
 */
export function livenessHandler(
  workers:
    | { liveness(options?: LivenessOptions): LivenessReport }
    | { liveness(options?: LivenessOptions): LivenessReport }[],
  options: LivenessOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const all = Array.isArray(workers) ? workers : [workers]
  return (_req, res) => {
    const reports = all.map((w) => w.liveness(options))
    const live = reports.every((r) => r.live)
    res.writeHead(live ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    res.end(JSON.stringify({ status: live ? 'live' : 'dead', workers: reports }))
  }
}
