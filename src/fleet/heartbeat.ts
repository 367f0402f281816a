/**
 * Worker heartbeats: every `heartbeatMs` a worker writes its beat to the broker (Redis) and to the
 * workers table (when the queue has a store), then acts as the fleet's coordinator for one call:
 * workers silent for 3 intervals are marked unhealthy and their leases expire at once (atomic in the
 * broker, so two coordinators never both reclaim one worker).
 */
import { hostname } from 'node:os'
import type { Broker, WorkerBeat } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { WorkerRow } from '../store/store.js'
import { toErrorInfo } from '../task/model.js'

export interface HeartbeatSource {
  id: string
  heartbeatMs: number
  startedAt: number
  inHand(): number
  processed(): number
  concurrency(): number
}

export class Heartbeat {
  /** When the current run of failed beats began; undefined while beats succeed. */
  failingSince: number | undefined
  /** When the last beat went through (construction time before the first). */
  lastOkAt = Date.now()
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> = Promise.resolve()
  private readonly host = hostname()

  constructor(
    private readonly broker: Broker,
    private readonly source: HeartbeatSource,
    private readonly logger: Logger,
    private readonly recordWorkers: (rows: readonly WorkerRow[]) => Promise<void>,
    private readonly onReaped: (workerId: string, tasks: number) => void,
    private readonly onBeat: () => void,
  ) {}

  async start(): Promise<void> {
    await this.beat()
    this.timer = setInterval(() => {
      this.running = this.running.then(() => this.beat())
    }, this.source.heartbeatMs)
    this.timer.unref()
  }

  /** Stops beating and takes the worker off the fleet listing; the table keeps it as 'stopped'. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.running
    const now = Date.now()
    try {
      await this.broker.removeWorker(this.source.id)
      await this.recordWorkers([{ ...this.row(this.snapshot(now)), status: 'stopped' }])
    } catch (err) {
      this.logger.warn({ err: toErrorInfo(err) }, 'could not record the worker as stopped')
    }
  }

  snapshot(now: number): WorkerBeat {
    const s = this.source
    const inHand = s.inHand()
    return {
      id: s.id,
      status: inHand > 0 ? 'active' : 'idle',
      lastHeartbeat: now,
      heartbeatMs: s.heartbeatMs,
      tasksInHand: inHand,
      tasksProcessed: s.processed(),
      hostname: this.host,
      pid: process.pid,
      concurrency: s.concurrency(),
      startedAt: s.startedAt,
    }
  }

  private row(b: WorkerBeat): WorkerRow {
    return {
      id: b.id,
      status: b.status,
      hostname: b.hostname,
      pid: b.pid,
      concurrency: b.concurrency,
      tasksInHand: b.tasksInHand,
      tasksProcessed: b.tasksProcessed,
      heartbeatMs: b.heartbeatMs,
      lastHeartbeat: b.lastHeartbeat,
      startedAt: b.startedAt,
    }
  }

  /** One beat: record, reclaim silent workers, mirror to the table. Never throws. */
  async beat(): Promise<void> {
    try {
      this.onBeat()
      const now = Date.now()
      const beat = this.snapshot(now)
      await this.broker.heartbeat(beat, now)
      const rows = [this.row(beat)]
      const reaped = await this.broker.reapWorkers(now)
      if (reaped.length > 0) {
        const ids = new Set(reaped.map((r) => r.id))
        for (const w of await this.broker.listWorkers()) {
          if (ids.has(w.id)) rows.push({ ...this.row(w), status: 'unhealthy' })
        }
        for (const r of reaped) {
          this.logger.warn(
            { dead_worker_id: r.id, tasks: r.tasks },
            `worker ${r.id} missed 3 heartbeats: marked unhealthy, ${r.tasks} lease(s) reclaimed`,
          )
          this.onReaped(r.id, r.tasks)
        }
      }
      this.failingSince = undefined
      this.lastOkAt = Date.now()
      await this.recordWorkers(rows).catch((err: unknown) => {
        this.logger.warn({ err: toErrorInfo(err) }, 'could not write heartbeats to the workers table')
      })
    } catch (err) {
      const first = this.failingSince === undefined
      this.failingSince ??= Date.now()
      // An unreachable Redis is logged once by its connection; other failures once per run of them.
      const outage = err instanceof TaskloomError && err.code === 'BROKER_UNAVAILABLE'
      if (first && !outage) this.logger.warn({ err: toErrorInfo(err) }, 'heartbeat failed; will try again')
      else this.logger.debug({ err: toErrorInfo(err) }, 'heartbeat failed; will try again')
    }
  }
}
