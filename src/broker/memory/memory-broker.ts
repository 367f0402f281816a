/**
 * The in-process broker: the embedded default for quick starts, demos and app unit tests. It keeps
 * the exact semantics of `RedisBroker` (both pass test/broker/conformance.ts) with the same shapes:
 * a deque per priority, a delayed timeline by due time, a lease timeline by deadline, a DLQ by time
 * of death and idempotency keys with an expiry. Every method works on the `now` it is given.
 *
 * ```ts
 * const broker = new MemoryBroker('emails', { retentionMs: 60 * 60 * 1000 })
 * const { tasks, nextWakeAt } = await broker.claim('worker-1', 10, 30_000, Date.now())
 * ```
 */
import { TaskloomError } from '../../errors.js'
import { flowScopeKey } from '../../flow/config.js'
import {
  type DependentRef,
  dependencyFailure,
  type FlowKey,
  type FlowRecord,
} from '../../task/dependency-model.js'
import type {
  Priority,
  QueueEventRecord,
  QueueEventType,
  TaskChange,
  TaskLogLine,
  TaskStatus,
} from '../../task/model.js'
import { PRIORITIES, TERMINAL_STATUSES } from '../../task/model.js'
import type {
  BreakerCall,
  BreakerReply,
  Broker,
  BrokerOptions,
  ChangeBatch,
  ClaimedTask,
  ClaimResult,
  Completion,
  CountsOptions,
  EnqueueResult,
  EpochGrant,
  EpochState,
  EventCount,
  Failure,
  Fenced,
  FencedOutcome,
  FlowEnqueueResult,
  FlowScope,
  FlowState,
  HeldPage,
  LockGrant,
  NewTask,
  Page,
  QueueCounts,
  ReapedWorker,
  RestoredTask,
  TaskRecord,
  TaskReport,
  WorkerBeat,
} from '../broker.js'
import { FENCE_LOW_WATER } from '../broker.js'
import { ChangeLog } from './change-log.js'
import { DeadLetters } from './dead-letters.js'
import { DependencyGraph } from './dependency-graph.js'
import { EventCounts } from './event-counts.js'
import { EventLog } from './event-log.js'
import { FleetState } from './fleet-state.js'
import { FlowReady } from './flow-ready.js'
import { IdempotencyKeys } from './idempotency-keys.js'
import { createTask, leaseExpired, recordAttempt, type TaskState, toClaimed, toRecord } from './task-state.js'
import { Timeline } from './timeline.js'
import { Waiters } from './waiters.js'

const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000
/** How soon a refused (not yet re-based) claim may be tried again. */
const BLOCKED_RETRY_MS = 50
/** Most groups `flowState` reports, as in Redis. */
const FLOW_STATE_GROUPS = 1000

export class MemoryBroker implements Broker {
  readonly queueName: string
  private readonly retentionMs: number

  private readonly tasks = new Map<string, TaskState>()
  /**
   * Ready tasks per level (with flow lanes, per level and group); cancelled ones stay behind as
   * tombstones and are skipped by claim. Tasks whose task name or group cannot start are held there.
   */
  private readonly ready = new FlowReady({
    hold: (task, held) => {
      if (held) this.tally(task, -1)
      task.parked = held
      if (!held) this.tally(task, 1)
    },
    wake: () => this.waiters.wakeAll(),
  })
  private readonly delayed = new Timeline<TaskState>()
  private readonly leases = new Timeline<TaskState>()
  private readonly dead = new DeadLetters<TaskState>()
  /** Completed and cancelled records by the time they are purged. */
  private readonly expiring = new Timeline<TaskState>()
  private readonly idempotency = new IdempotencyKeys<TaskState>()
  private readonly waiters = new Waiters()
  /** Task lock keys: the processing task holding each, and the tasks waiting for it, FIFO. */
  private readonly taskLocks = new Map<string, TaskState>()
  private readonly parkedByKey = new Map<string, TaskState[]>()
  /** Tasks admitted by the claim in progress (they hold their keys, though not yet processing). */
  private readonly admitting = new Set<TaskState>()
  /** Distributed locks, breakers and heartbeats (queue-wide state outside the task records). */
  private readonly fleet = new FleetState(() => ++this.lastToken)
  private readonly events = new EventCounts()
  /** The change feed, in durable mode. */
  private readonly changes: ChangeLog | undefined
  /** Queue events (issue 17). */
  private readonly eventLog = new EventLog()
  /** Task dependencies and flows (this queue's only: an in-process broker sees no other). */
  private readonly graph: DependencyGraph

  private readonly queued: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 }
  private pending = 0
  private processing = 0
  private lastToken = 0
  /** The latest `now` seen; `get` has none of its own. */
  private clock = Number.NEGATIVE_INFINITY
  private closed = false
  /**
   * Unset until the first `ensureEpoch` (every process starts a new epoch); then the re-base's
   * phase, and the restore lease's deadline while it is not done.
   */
  private epoch: { phase: 'rebasing' | 'filling' | 'done'; until: number } | undefined
  private readonly fenced: boolean
  /** Fenced: the highest token this broker may issue (see `raiseFences`). */
  private fenceCeiling = 0
  private readonly blockedListeners: ((reason: 'epoch' | 'fence') => void)[] = []

  constructor(queueName: string, options: BrokerOptions = {}) {
    this.queueName = queueName
    this.retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS
    this.changes = options.changeFeed ? new ChangeLog() : undefined
    this.fenced = options.fenced === true
    this.graph = new DependencyGraph(queueName)
    if (options.flow) this.ready.configure(options.flow)
  }

  onBlocked(listener: (reason: 'epoch' | 'fence') => void): void {
    this.blockedListeners.push(listener)
  }

  private blocked(reason: 'epoch' | 'fence'): void {
    for (const listener of this.blockedListeners) {
      try {
        listener(reason)
      } catch {
        // A listener never fails a claim.
      }
    }
  }

  /** Fenced: why a claim or lock must be refused now, or undefined; tells the listener of a near ceiling. */
  private refusal(wanted: number): 'epoch' | 'fence' | undefined {
    if (!this.fenced) return undefined
    let reason: 'epoch' | 'fence' | undefined
    if (this.epoch === undefined || this.epoch.phase === 'rebasing') reason = 'epoch'
    else if (this.lastToken >= this.fenceCeiling) reason = 'fence'
    if (reason !== undefined || this.fenceCeiling - this.lastToken - wanted < FENCE_LOW_WATER)
      this.blocked(reason ?? 'fence')
    return reason
  }

  async enqueue(tasks: readonly NewTask[], now: number): Promise<EnqueueResult[]> {
    this.advance(now)
    if (tasks.some((t) => t.dependsOn?.length)) return this.addFlow(tasks, now).results
    return this.enqueueNow(tasks, now)
  }

  private enqueueNow(tasks: readonly NewTask[], now: number): EnqueueResult[] {
    const results: EnqueueResult[] = []
    let added = false
    for (const input of tasks) {
      // A re-sent id (a retried submit) answers the task it already created.
      const existing = this.tasks.get(input.id) ?? this.findIdempotent(input, now)
      if (existing) {
        results.push({
          id: existing.id,
          status: existing.status,
          createdAt: existing.createdAt,
          deduplicated: true,
        })
        continue
      }
      const task = createTask(input)
      this.tasks.set(task.id, task)
      this.tally(task, 1) // born pending; queueAtTail or schedule moves it from there
      this.events.add('submitted', task, task.priority)
      this.rememberKey(task, input.idempotencyTtlMs, now)
      if (task.runAt <= now) this.queueAtTail(task)
      else this.schedule(task, task.runAt)
      this.emit('queued', task, now, { runAt: task.runAt })
      results.push({ id: task.id, status: task.status, createdAt: task.createdAt, deduplicated: false })
      added = true
    }
    // Delayed tasks wake waiters too: they may now have an earlier `nextWakeAt` to wait for.
    if (added) this.waiters.wakeAll()
    return results
  }

  async enqueueFlow(
    tasks: readonly NewTask[],
    now: number,
    flow?: { record: FlowRecord; key?: FlowKey | undefined },
  ): Promise<FlowEnqueueResult> {
    this.advance(now)
    return this.addFlow(tasks, now, flow)
  }

  async getFlow(id: string): Promise<FlowRecord | null> {
    this.open()
    return this.graph.getFlow(id)
  }

  async getTasks(refs: readonly DependentRef[]): Promise<(TaskRecord | null)[]> {
    return Promise.all(refs.map((r) => (r.queue === this.queueName ? this.get(r.id) : null)))
  }

  /** enqueueFlow, all at once (see enqueue-flow.lua, the Redis twin). */
  private addFlow(
    tasks: readonly NewTask[],
    now: number,
    flow?: { record: FlowRecord; key?: FlowKey | undefined },
  ): FlowEnqueueResult {
    const key = flow?.key
    const seen = key && this.graph.flowOfKey(flow.record.tenantId, key.key, now)
    if (seen) return { results: [], deduplicated: true, flow: seen }
    const batch = new Map<string, string>()
    tasks.forEach((t, i) => {
      for (const d of this.tasks.has(t.id) ? [] : (t.dependsOn ?? [])) {
        const tenant =
          d.queue === this.queueName ? (batch.get(d.id) ?? this.tasks.get(d.id)?.tenantId) : undefined
        if (tenant !== t.tenantId) {
          throw new TaskloomError(
            'NOT_FOUND',
            `dependency ${d.id} of task ${tasks[i]!.name} not found in queue ${d.queue}`,
          )
        }
      }
      batch.set(t.id, t.tenantId)
    })
    const results: EnqueueResult[] = []
    for (const input of tasks) {
      const existing = this.tasks.get(input.id) ?? this.findIdempotent(input, now)
      if (existing) {
        results.push({
          id: existing.id,
          status: existing.status,
          createdAt: existing.createdAt,
          deduplicated: true,
        })
        continue
      }
      if (!input.dependsOn?.length) {
        results.push(...this.enqueueNow([input], now))
        this.tasks.get(input.id)!.flowId = flow?.record.id
        continue
      }
      const task = createTask(input)
      task.dependsOn = input.dependsOn.map((d) => ({ ...d }))
      task.flowId = flow?.record.id
      this.tasks.set(task.id, task)
      this.tally(task, 1)
      this.events.add('submitted', task, task.priority)
      this.rememberKey(task, input.idempotencyTtlMs, now)
      let cause: Pick<TaskState, 'id' | 'name' | 'status' | 'error'> | undefined
      for (const d of input.dependsOn) {
        const dep = this.tasks.get(d.id) ?? { id: d.id, name: '?', status: d.knownStatus ?? 'queued' }
        if (dep.status === 'failed' || dep.status === 'cancelled') {
          if (d.onFailure === 'fail') cause ??= dep
        } else if (dep.status !== 'completed') this.graph.wait(task.id, d.id, d.onFailure)
      }
      if (cause) this.endUnrun(task, cause, now)
      else if (!this.graph.isWaiting(task.id)) this.releaseWaiting(task, now)
      results.push({ id: task.id, status: task.status, createdAt: task.createdAt, deduplicated: false })
    }
    if (flow && results.some((r) => !r.deduplicated))
      this.graph.addFlow(flow.record, key?.key, now + (key?.ttlMs ?? 0))
    this.changes?.commit()
    this.waiters.wakeAll()
    return { results, deduplicated: false }
  }

  /** `first` finished: its waiting dependents drop it, and are released or end with it (deps.lua). */
  private settleDependents(first: TaskState, now: number): void {
    const stack = [first]
    while (stack.length > 0) {
      const dep = stack.pop()!
      for (const { id, onFailure, free } of this.graph.finished(dep.id)) {
        const task = this.tasks.get(id)
        if (!task) continue
        if (dep.status !== 'completed' && onFailure === 'fail') {
          this.endUnrun(task, dep, now)
          stack.push(task)
        } else if (free) this.releaseWaiting(task, now)
      }
    }
  }

  /** A task that will not run: a dependency it needed (`cause`) failed or was cancelled. */
  private endUnrun(
    task: TaskState,
    cause: Pick<TaskState, 'id' | 'name' | 'status' | 'error'>,
    now: number,
  ): void {
    this.graph.leave(task.id)
    task.error = dependencyFailure(cause, cause.error)
    if (cause.status === 'cancelled') {
      this.setStatus(task, 'cancelled')
      this.events.add('cancelled', task)
      this.finish(task, now)
      this.emit('cancelled', task, now)
    } else {
      this.bury(task, now)
      this.events.add('dead_lettered', task, 'DependencyFailedError')
      this.emit('dead', task, now, { error: task.error })
    }
    this.note(task, now, { error: task.error })
  }

  private releaseWaiting(task: TaskState, now: number): void {
    this.graph.leave(task.id)
    if (task.runAt > now) this.schedule(task, task.runAt)
    else {
      task.runAt = now
      this.queueAtTail(task)
      this.emit('queued', task, now, { runAt: now })
    }
    this.note(task, now, { runAt: task.runAt })
    this.waiters.wakeAll()
  }

  async claim(workerId: string, max: number, leaseMs: number, now: number): Promise<ClaimResult> {
    this.advance(now)
    const refused = this.refusal(max)
    if (refused) return { tasks: [], nextWakeAt: now + BLOCKED_RETRY_MS, blocked: refused }
    if (this.fenced) max = Math.min(max, this.fenceCeiling - this.lastToken)
    const promoted = this.promoteDue(now)
    const returned = this.reapExpired(now)
    const admitted = this.ready.take(max, (task) => this.admit(task), now)
    this.admitting.clear()
    const tasks = admitted.map((task) => this.lease(task, workerId, leaseMs, now))
    if ((promoted || returned) && this.hasReady()) this.waiters.wakeAll()
    this.changes?.commit()
    return { tasks, nextWakeAt: this.nextWakeAt(now) }
  }

  async complete(items: readonly Completion[], now: number): Promise<FencedOutcome[]> {
    this.advance(now)
    const outcomes = items.map((item): FencedOutcome => {
      const task = this.tasks.get(item.id)
      if (task?.token !== item.token) return 'stale'
      if (task.status === 'completed') return 'ok'
      if (task.status !== 'processing') return 'stale'
      this.endLease(task)
      this.setStatus(task, 'completed')
      this.events.add('completed', task)
      this.freeTaskLock(task)
      task.result = item.result
      this.finish(task, now)
      this.note(task, now, { result: item.result })
      this.emit('completed', task, now)
      this.settleDependents(task, now)
      return 'ok'
    })
    this.changes?.commit()
    return outcomes
  }

  async fail(items: readonly Failure[], now: number): Promise<FencedOutcome[]> {
    this.advance(now)
    let retried = false
    const outcomes = items.map((item): FencedOutcome => {
      const task = this.holding(item)
      if (!task) return 'stale'
      this.endLease(task)
      recordAttempt(task, item.outcome, item.error, now)
      this.setStatus(task, 'pending')
      this.freeTaskLock(task)
      this.events.add('attempt_failed', task, item.error.name)
      if (item.retryAt !== null) this.events.add('retried', task)
      if (item.retryAt === null) {
        this.bury(task, now)
        this.events.add('dead_lettered', task, item.error.name)
        this.settleDependents(task, now)
      } else if (item.retryAt > now) {
        this.schedule(task, item.retryAt)
        retried = true
      } else {
        task.runAt = now
        this.queueAtTail(task)
        retried = true
      }
      this.note(task, now, {
        runAt: item.retryAt === null ? undefined : task.runAt,
        error: item.error,
        failedAttempt: task.history.at(-1),
      })
      this.emitFailure(task, now)
      return 'ok'
    })
    if (retried) this.waiters.wakeAll()
    this.changes?.commit()
    return outcomes
  }

  async extend(items: readonly Fenced[], leaseMs: number, now: number): Promise<FencedOutcome[]> {
    this.advance(now)
    return items.map((item) => {
      const task = this.holding(item)
      if (!task) return 'stale'
      this.endLease(task)
      task.timer = this.leases.add(now + leaseMs, task)
      return 'ok'
    })
  }

  async release(items: readonly Fenced[], now: number): Promise<FencedOutcome[]> {
    this.advance(now)
    const released: TaskState[] = []
    const outcomes = items.map((item): FencedOutcome => {
      const task = this.holding(item)
      if (!task) return 'stale'
      this.endLease(task)
      task.attempt -= 1
      this.setStatus(task, 'pending')
      this.freeTaskLock(task)
      released.push(task)
      return 'ok'
    })
    this.queueAtHead(released)
    for (const task of released) this.note(task, now)
    this.changes?.commit()
    if (released.length > 0) this.waiters.wakeAll()
    return outcomes
  }

  async cancel(id: string, now: number): Promise<TaskRecord> {
    this.advance(now)
    const task = this.tasks.get(id)
    if (!task) throw new TaskloomError('NOT_FOUND', `task ${id} not found in queue ${this.queueName}`)
    if (task.status === 'processing') {
      throw new TaskloomError('TASK_PROCESSING', `task ${id} is processing and cannot be cancelled`)
    }
    if (TERMINAL_STATUSES.has(task.status)) {
      throw new TaskloomError('TASK_FINISHED', `task ${id} already finished as ${task.status}`)
    }
    // A pending task leaves the delayed timeline; a queued one stays in its deque as a tombstone.
    this.delayed.remove(task.timer)
    task.timer = undefined
    this.setStatus(task, 'cancelled')
    this.events.add('cancelled', task)
    this.finish(task, now)
    this.note(task, now)
    this.emit('cancelled', task, now)
    this.graph.leave(task.id)
    this.settleDependents(task, now)
    this.changes?.commit()
    return toRecord(task)
  }

  async get(id: string): Promise<TaskRecord | null> {
    this.advance(this.clock)
    // Fenced: only a re-based copy is answered (see RedisBroker.get).
    if (this.fenced && (this.epoch === undefined || this.epoch.phase === 'rebasing')) return null
    const task = this.tasks.get(id)
    if (!task) return null
    const record = toRecord(task)
    if (!task.dependsOn && !task.flowId && this.graph.dependentsOf(id).length === 0) return record
    return {
      ...record,
      dependsOn: task.dependsOn?.map((d) => ({ ...d })),
      dependents: this.graph.dependentsOf(id),
      waitingFor: this.graph.waitingFor(id),
      flowId: task.flowId,
    }
  }

  async listDead(limit: number, offset: number): Promise<Page<TaskRecord>> {
    this.open()
    return { items: this.dead.newestFirst(limit, offset).map(toRecord), total: this.dead.length }
  }

  async retryDead(ids: readonly string[], now: number): Promise<number> {
    this.advance(now)
    const revived = new Set<TaskState>()
    for (const id of ids) {
      const task = this.tasks.get(id)
      if (task?.status === 'failed') revived.add(task)
    }
    this.dead.remove(revived)
    return this.revive([...revived], now)
  }

  async retryAllDead(max: number, now: number): Promise<string[]> {
    this.advance(now)
    const tasks = this.dead.takeOldest(max)
    this.revive(tasks, now)
    return tasks.map((task) => task.id)
  }

  async counts(options: CountsOptions = {}): Promise<QueueCounts> {
    this.open()
    const counts: QueueCounts = {
      ready: { ...this.queued },
      delayed: this.pending,
      processing: this.processing,
      dead: this.dead.length,
    }
    if (!options.oldestReady) return counts
    return {
      ...counts,
      oldestReadyAt: Object.fromEntries(
        PRIORITIES.map((p) => [
          p,
          this.ready.first(p, (task) => task.status === 'queued' && !task.parked)?.runAt ?? null,
        ]),
      ) as Record<Priority, number | null>,
    }
  }

  async eventCounts(): Promise<EventCount[]> {
    this.open()
    return this.events.list()
  }

  waitForWork(timeoutMs: number, signal: AbortSignal): Promise<void> {
    // Work that is ready already (enqueued between a claim and this call) must not be slept through.
    if (this.closed || this.hasReady()) return Promise.resolve()
    return this.waiters.wait(timeoutMs, signal)
  }

  async close(): Promise<void> {
    this.closed = true
    this.waiters.wakeAll()
    this.changes?.close()
    this.eventLog.close()
  }

  async ensureEpoch(now: number, restoreLeaseMs: number): Promise<EpochGrant> {
    this.advance(now)
    const epoch = this.epoch
    if (epoch === undefined) {
      this.epoch = { phase: 'rebasing', until: now + restoreLeaseMs }
      return { created: true, cause: 'missing', phase: 'rebasing' }
    }
    if (epoch.phase === 'done' || epoch.until >= now) return { created: false }
    epoch.until = now + restoreLeaseMs
    return { created: true, cause: 'resume', phase: epoch.phase }
  }

  async markEpoch(now: number, state: EpochState, restoreLeaseMs: number): Promise<void> {
    this.open()
    const epoch = this.epoch
    if (epoch === undefined) {
      throw new TaskloomError('BROKER_UNAVAILABLE', `queue ${this.queueName}: no re-base in progress`)
    }
    if (state === 'done') epoch.phase = 'done'
    else if (state === 'abandoned') {
      if (epoch.phase !== 'done') epoch.until = 0
    } else if (epoch.phase !== 'done') {
      epoch.until = now + restoreLeaseMs
      if (state === 'serving') epoch.phase = 'filling'
    }
  }

  async raiseFences(base: number, ceiling: number): Promise<void> {
    this.open()
    if (this.lastToken < base) this.lastToken = base
    if (this.fenceCeiling < ceiling) this.fenceCeiling = ceiling
  }

  async heldIds(cursor: string | null, limit: number): Promise<HeldPage> {
    this.open()
    const ids: string[] = []
    for (const task of this.tasks.values()) {
      if (task.status === 'completed' || task.status === 'cancelled') continue
      if (cursor === null || task.id > cursor) ids.push(task.id)
    }
    ids.sort()
    const page = ids.slice(0, limit)
    return { ids: page, nextCursor: page.length === limit && ids.length > limit ? page.at(-1)! : null }
  }

  async restore(rows: readonly RestoredTask[], now: number): Promise<number> {
    this.advance(now)
    let changed = 0
    for (const row of rows) {
      let task = this.tasks.get(row.id)
      if (task === undefined) {
        if (row.status === 'completed' || row.status === 'cancelled') continue
        task = createTask(row)
        this.tasks.set(task.id, task)
        this.tally(task, 1) // born pending; applied below
      } else if (!rowIsAhead(task, row)) continue
      this.applyRow(task, row, now)
      changed++
    }
    if (changed > 0) this.waiters.wakeAll()
    return changed
  }

  /** Rewrites a task from the store's row (see restore.lua, the Redis twin). */
  private applyRow(task: TaskState, row: RestoredTask, now: number): void {
    if (task.status === 'processing') {
      this.endLease(task)
      this.freeTaskLock(task)
    } else if (task.status === 'pending') {
      this.delayed.remove(task.timer)
      task.timer = undefined
    } else if (task.status === 'failed') {
      this.dead.remove(new Set([task]))
    }
    const wasQueued = task.status === 'queued'
    task.token = 0
    task.attempt = row.attempt
    if (row.status === 'completed' || row.status === 'cancelled') {
      this.setStatus(task, row.status)
      if (row.result !== undefined) task.result = row.result
      this.finish(task, row.finishedAt ?? now)
    } else if (row.status === 'failed') {
      if (row.error) task.error = row.error
      this.bury(task, row.finishedAt ?? now)
    } else if (row.status === 'pending' && row.runAt > now) {
      this.schedule(task, row.runAt)
    } else {
      task.runAt = row.runAt
      if (wasQueued) this.setStatus(task, 'queued')
      else this.queueAtTail(task)
    }
  }

  async readChanges(
    _consumer: string,
    max: number,
    blockMs: number,
    reclaimAfterMs: number,
  ): Promise<ChangeBatch> {
    this.open()
    if (!this.changes) return { ids: [], changes: [] }
    return this.changes.read(max, blockMs, reclaimAfterMs)
  }

  async ackChanges(ids: readonly string[]): Promise<void> {
    this.changes?.ack(ids)
  }

  // --- Task output and queue events (issue 17) ---

  async report(items: readonly TaskReport[], maxLogLines: number, now: number): Promise<FencedOutcome[]> {
    this.advance(now)
    const outcomes = items.map((item): FencedOutcome => {
      const task = this.holding(item)
      if (!task) return 'stale'
      if (item.progress !== undefined) {
        task.progress = item.progress
        this.emit('progress', task, now, { progress: item.progress })
        this.changes?.recordOutput({ id: task.id, token: task.token, at: now, progress: item.progress })
        return 'ok'
      }
      task.logCount = (task.logCount ?? 0) + 1
      const line: TaskLogLine = { token: task.token, seq: task.logCount, at: now, line: item.log ?? '' }
      task.logLines ??= []
      const lines = task.logLines
      lines.push(line)
      if (lines.length > maxLogLines) lines.splice(0, lines.length - maxLogLines)
      this.changes?.recordOutput({ id: task.id, token: task.token, at: now, logs: [{ ...line }] })
      return 'ok'
    })
    this.changes?.commit()
    return outcomes
  }

  async logs(id: string): Promise<TaskLogLine[] | null> {
    this.advance(this.clock)
    const task = this.tasks.get(id)
    return task ? (task.logLines ?? []).map((line) => ({ ...line })) : null
  }

  async listenEvents(keepMs: number, maxLen: number): Promise<void> {
    this.open()
    this.eventLog.listen(keepMs, maxLen)
  }

  async lastEventId(): Promise<string> {
    this.open()
    return this.eventLog.lastId()
  }

  async readEvents(
    after: string,
    max: number,
    blockMs: number,
    signal?: AbortSignal,
  ): Promise<QueueEventRecord[]> {
    this.open()
    return this.eventLog.read(after, max, blockMs, signal)
  }

  private emit(
    type: QueueEventType,
    task: TaskState,
    now: number,
    extra: Partial<QueueEventRecord> = {},
  ): void {
    this.eventLog.add({
      type,
      taskId: task.id,
      name: task.name,
      tenantId: task.tenantId,
      attempt: task.attempt,
      at: now,
      ...extra,
    })
  }

  /** A failed attempt: `dead` once dead-lettered, else `retrying` at its new run time. */
  private emitFailure(task: TaskState, now: number): void {
    if (task.status === 'failed') this.emit('dead', task, now, { error: task.error })
    else this.emit('retrying', task, now, { runAt: task.runAt, error: task.error })
  }

  async holdChanges(_consumer: string, ids: readonly string[]): Promise<void> {
    this.changes?.hold(ids)
  }

  async acquireLock(key: string, ttlMs: number, now: number): Promise<LockGrant> {
    this.advance(now)
    const refused = this.refusal(1)
    if (refused) return { acquired: false, heldUntil: now + BLOCKED_RETRY_MS, blocked: refused }
    return this.fleet.acquireLock(key, ttlMs, now)
  }

  async extendLock(key: string, token: number, ttlMs: number, now: number): Promise<boolean> {
    this.advance(now)
    return this.fleet.extendLock(key, token, ttlMs, now)
  }

  async releaseLock(key: string, token: number, now: number): Promise<boolean> {
    this.advance(now)
    return this.fleet.releaseLock(key, token, now)
  }

  async defer(items: readonly Fenced[], runAt: number, now: number, by?: string): Promise<FencedOutcome[]> {
    this.advance(now)
    const outcomes = items.map((item): FencedOutcome => {
      const task = this.holding(item)
      if (!task) return 'stale'
      this.endLease(task)
      task.attempt -= 1
      task.deferredBy = by || undefined
      task.deferredUntil = by ? runAt : undefined
      this.setStatus(task, 'pending')
      this.freeTaskLock(task)
      this.schedule(task, runAt)
      this.note(task, now, { runAt })
      return 'ok'
    })
    this.changes?.commit()
    if (outcomes.includes('ok')) this.waiters.wakeAll()
    return outcomes
  }

  async pause(scope: FlowScope, now: number): Promise<void> {
    this.advance(now)
    this.ready.pause(flowScopeKey(scope))
  }

  async resume(scope: FlowScope, now: number): Promise<void> {
    this.advance(now)
    this.ready.resume(flowScopeKey(scope))
  }

  async throttle(
    items: readonly Fenced[],
    scope: FlowScope,
    until: number,
    now: number,
  ): Promise<FencedOutcome[]> {
    this.advance(now)
    this.ready.throttle(flowScopeKey(scope), until)
    return this.release(items, now)
  }

  async flowState(now: number): Promise<FlowState> {
    this.advance(now)
    return this.ready.state(now, FLOW_STATE_GROUPS)
  }

  async breaker(call: BreakerCall, now: number): Promise<BreakerReply> {
    this.advance(now)
    return this.fleet.breaker(call, now)
  }

  async heartbeat(beat: WorkerBeat, now: number): Promise<void> {
    this.advance(now)
    this.fleet.heartbeat(beat)
  }

  async removeWorker(workerId: string): Promise<void> {
    this.open()
    this.fleet.removeWorker(workerId)
  }

  async listWorkers(): Promise<WorkerBeat[]> {
    this.open()
    return this.fleet.listWorkers()
  }

  async reapWorkers(now: number): Promise<ReapedWorker[]> {
    this.advance(now)
    const dead = this.fleet.reap(now)
    if (dead.size === 0) return []
    const counts = new Map<string, number>([...dead].map((id) => [id, 0]))
    for (const task of this.tasks.values()) {
      if (task.status !== 'processing' || task.workerId === undefined || !dead.has(task.workerId)) continue
      this.endLease(task)
      task.timer = this.leases.add(now, task)
      counts.set(task.workerId, counts.get(task.workerId)! + 1)
    }
    this.waiters.wakeAll()
    return [...counts].map(([id, tasks]) => ({ id, tasks }))
  }

  /**
   * Claim's filter: a queued task may be leased unless another processing task holds its lock key;
   * then it is parked (no attempt spent) until the key is freed.
   */
  private admit(task: TaskState): boolean {
    const lk = task.lockKey
    if (task.status !== 'queued') {
      if (lk !== undefined && !this.lockHeld(lk, task)) this.unparkOne(lk)
      return false
    }
    if (lk === undefined) return true
    if (this.lockHeld(lk, task)) {
      this.tally(task, -1)
      task.parked = true
      const waiting = this.parkedByKey.get(lk) ?? []
      if (task.letIn) waiting.unshift(task)
      else waiting.push(task)
      this.parkedByKey.set(lk, waiting)
      task.letIn = false
      return false
    }
    task.letIn = false
    this.taskLocks.set(lk, task)
    this.admitting.add(task)
    return true
  }

  private lockHeld(lk: string, task: TaskState): boolean {
    const holder = this.taskLocks.get(lk)
    return (
      holder !== undefined &&
      holder !== task &&
      (holder.status === 'processing' || this.admitting.has(holder))
    )
  }

  /** Puts the first still-queued task waiting for `lk` back at the head of its level. */
  private unparkOne(lk: string): void {
    const waiting = this.parkedByKey.get(lk)
    while (waiting && waiting.length > 0) {
      const task = waiting.shift()!
      if (!task.parked) continue
      task.parked = false
      if (task.status !== 'queued') continue
      task.letIn = true
      this.tally(task, 1)
      this.ready.pushHead([task])
      this.waiters.wakeAll()
      break
    }
    if (waiting?.length === 0) this.parkedByKey.delete(lk)
  }

  /** A task left processing: its lock key and its group slot are free for the next waiter. */
  private freeTaskLock(task: TaskState): void {
    this.ready.leave(task)
    const lk = task.lockKey
    if (lk === undefined) return
    if (this.taskLocks.get(lk) === task) this.taskLocks.delete(lk)
    this.unparkOne(lk)
  }

  /** Records the task's new state on the change feed (durable mode). */
  private note(task: TaskState, now: number, extra: Partial<TaskChange> = {}): void {
    this.changes?.record({ id: task.id, status: task.status, attempt: task.attempt, at: now, ...extra })
  }

  /** Every stateful call starts here: refuses once closed, moves the clock, purges what expired. */
  private advance(now: number): void {
    this.open()
    if (now > this.clock) this.clock = now
    for (const task of this.expiring.popAllDue(this.clock)) {
      if (this.tasks.get(task.id) === task) {
        this.tasks.delete(task.id)
        this.graph.forget(task.id)
      }
    }
    this.idempotency.sweep(this.clock)
  }

  private open(): void {
    if (this.closed) throw new TaskloomError('CLOSED', `broker for queue ${this.queueName} is closed`)
  }

  private findIdempotent(input: NewTask, now: number): TaskState | undefined {
    if (input.idempotencyKey === undefined) return undefined
    const task = this.idempotency.find(input.tenantId, input.idempotencyKey, now)
    // A purged record frees its key: the next submit creates a new task.
    return task && this.tasks.get(task.id) === task ? task : undefined
  }

  private rememberKey(task: TaskState, ttlMs: number, now: number): void {
    if (task.idempotencyKey === undefined || !(ttlMs > 0)) return
    this.idempotency.remember(task.tenantId, task.idempotencyKey, task, now + ttlMs)
  }

  /** Moves due delayed tasks to the tail of their level, earliest first. */
  private promoteDue(now: number): boolean {
    const due = this.delayed.popAllDue(now)
    for (const task of due) {
      task.timer = undefined
      this.queueAtTail(task)
    }
    return due.length > 0
  }

  /** Returns expired leases: dead-lettered after the last attempt, else first in line again. */
  private reapExpired(now: number): boolean {
    const expired = this.leases.popAllDue(now)
    const returned: TaskState[] = []
    for (const task of expired) {
      task.timer = undefined
      recordAttempt(task, 'lease-expired', leaseExpired(task), now)
      this.setStatus(task, 'pending')
      this.freeTaskLock(task)
      this.events.add('lease_expired', task)
      if (task.attempt > task.maxRetries) {
        this.bury(task, now)
        this.events.add('dead_lettered', task, 'LeaseExpiredError')
        this.settleDependents(task, now)
      } else returned.push(task)
    }
    this.queueAtHead(returned)
    for (const task of expired) {
      this.note(task, now, { error: task.error, failedAttempt: task.history.at(-1) })
      this.emitFailure(task, now)
    }
    return returned.length > 0
  }

  private lease(task: TaskState, workerId: string, leaseMs: number, now: number): ClaimedTask {
    this.setStatus(task, 'processing')
    task.attempt += 1
    task.token = ++this.lastToken
    task.startedAt = now
    task.workerId = workerId
    task.timer = this.leases.add(now + leaseMs, task)
    this.note(task, now, { startedAt: now, workerId })
    return toClaimed(task)
  }

  /** The task if `item.token` is its current lease, else undefined. */
  private holding(item: Fenced): TaskState | undefined {
    const task = this.tasks.get(item.id)
    return task?.status === 'processing' && task.token === item.token ? task : undefined
  }

  private endLease(task: TaskState): void {
    this.leases.remove(task.timer)
    task.timer = undefined
  }

  private schedule(task: TaskState, runAt: number): void {
    this.setStatus(task, 'pending')
    task.runAt = runAt
    task.timer = this.delayed.add(runAt, task)
  }

  private queueAtTail(task: TaskState): void {
    this.setStatus(task, 'queued')
    this.ready.pushTail(task)
  }

  /** Queues tasks first in line again; the first given is claimed first. */
  private queueAtHead(tasks: readonly TaskState[]): void {
    for (const task of tasks) this.setStatus(task, 'queued')
    this.ready.pushHead(tasks)
  }

  private bury(task: TaskState, now: number): void {
    this.setStatus(task, 'failed')
    task.finishedAt = now
    this.dead.add(now, task)
  }

  private revive(tasks: readonly TaskState[], now: number): number {
    for (const task of tasks) {
      task.attempt = 0
      task.finishedAt = undefined
      this.events.add('dead_letter_retried', task)
      task.runAt = now
      this.queueAtTail(task)
      this.note(task, now, { runAt: now, revive: true })
      this.emit('queued', task, now, { runAt: now })
    }
    this.changes?.commit()
    if (tasks.length > 0) this.waiters.wakeAll()
    return tasks.length
  }

  /** Completed and cancelled records are kept for `retentionMs`. */
  private finish(task: TaskState, now: number): void {
    task.finishedAt = now
    this.expiring.add(now + this.retentionMs, task)
  }

  private setStatus(task: TaskState, status: TaskStatus): void {
    this.tally(task, -1)
    task.status = status
    this.tally(task, 1)
  }

  private tally(task: TaskState, delta: number): void {
    if (task.status === 'queued') {
      if (!task.parked) this.queued[task.priority] += delta
    } else if (task.status === 'pending') this.pending += delta
    else if (task.status === 'processing') this.processing += delta
  }

  private hasReady(): boolean {
    return PRIORITIES.some((priority) => this.queued[priority] > 0) && this.ready.mayClaim(this.clock)
  }

  private nextWakeAt(now: number): number | null {
    const times = [this.delayed.peek()?.at, this.leases.peek()?.at, this.ready.nextWakeAt(now)]
    const defined = times.filter((t): t is number => t !== undefined)
    return defined.length === 0 ? null : Math.min(...defined)
  }
}

/** Whether the store's row is ahead of the broker's copy (the rules of restore.lua). */
function rowIsAhead(task: TaskState, row: RestoredTask): boolean {
  const terminal = TERMINAL_STATUSES.has(row.status)
  if (task.status === 'completed' || task.status === 'cancelled') return false
  if (task.status === 'failed') return !terminal && row.updatedAt > (task.finishedAt ?? 0)
  // Completed and cancelled are final: nothing the broker did since can be newer. A dead row is
  // ahead unless the broker revived the task since (a DLQ retry during the re-base).
  if (row.status === 'completed' || row.status === 'cancelled') return true
  if (terminal) return row.updatedAt >= Math.max(task.runAt, task.startedAt ?? 0)
  if (row.attempt > task.attempt) return true
  return (
    row.attempt === task.attempt &&
    task.status === 'processing' &&
    row.status !== 'processing' &&
    row.updatedAt >= (task.startedAt ?? 0)
  )
}
