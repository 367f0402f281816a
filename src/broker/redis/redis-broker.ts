/**
 * The production Broker: one Lua script call per operation and batch (see ./lua), so a busy worker
 * moves many tasks per round trip.
 */
import { TaskloomError } from '../../errors.js'
import { flowScopeKey } from '../../flow/config.js'
import type { Logger } from '../../logger.js'
import type { DependentRef, FlowKey, FlowRecord } from '../../task/dependency-model.js'
import { PRIORITIES, type Priority, type QueueEventRecord, type TaskLogLine } from '../../task/model.js'
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
import { ChangeFeedReader } from './change-feed.js'
import { SlotServer } from './cluster.js'
import { decodeTask, pairsToObject } from './codec.js'
import {
  BROKER_TIMEOUT_MS,
  bounded,
  connectRedis,
  type RedisClient,
  type RedisHandle,
  type RedisInput,
  unavailable,
} from './connection.js'
import { decodeLogLine, EventReaders, eventKeys } from './events.js'
import { decodeFlowState, encodeFlowConfig } from './flow-codec.js'
import { decodeFlowReply, dependencyFields, enqueueFlowArgs, readDependencySets, readTasks } from './flows.js'
import { type QueueKeys, queueKeys } from './keys.js'
import { runScript, type ScriptName } from './scripts.js'

const DAY = 86_400_000
/** How long a silent worker stays listed (as unhealthy) before it is dropped. */
export const WORKER_RETAIN_MS = 3_600_000
/** Delayed promotions and lease expiries handled per claim call, so one call stays short. */
const MAINTENANCE_LIMIT = 1000
/** Ready-list entries `counts()` looks at per level to find the oldest live task past tombstones. */
export const OLDEST_READY_WINDOW = 16
/** Most groups `flowState` reports (a bounded label set for metrics). */
const FLOW_STATE_GROUPS = 1000
const LEASE_EXPIRED = JSON.stringify({
  name: 'LeaseExpiredError',
  message: 'lease expired before the task finished',
})

/** A Redis call's failure as the broker reports it: BROKER_UNAVAILABLE unless Redis answered. */
const io = <T>(call: Promise<T>): Promise<T> =>
  call.catch((err: unknown) => {
    throw unavailable(err)
  })
/** How soon a refused (not yet re-based) claim may be tried again. */
const BLOCKED_RETRY_MS = 50
/** How long a fenced completion or failure waits for a re-base before it fails. */
const SETTLE_WAIT_MS = 30_000
/** The sections `heldIds` walks: the ready lists (by index), then the zsets (by ZSCAN). */
const HELD_SECTIONS = ['ready:0', 'ready:1', 'ready:2', 'ready:3', 'delayed', 'leases', 'dlq'] as const

const priorityIndex = (p: Priority): number => PRIORITIES.indexOf(p)
const outcomes = (reply: unknown): FencedOutcome[] =>
  (reply as number[]).map((v) => (v === 1 ? 'ok' : 'stale'))

export interface RedisBrokerOptions extends BrokerOptions {
  redis: RedisInput
  /** Longest wait of one Redis call before BROKER_UNAVAILABLE (see ./connection.ts). Default 5,000 ms. */
  timeoutMs?: number
  /** Logs losing and regaining the connection, once each. */
  logger?: Logger
}

export class RedisBroker implements Broker {
  readonly queueName: string
  private readonly keys: QueueKeys
  private readonly handle: RedisHandle
  private readonly redis: RedisClient
  /** The server behind the queue's slot (one server, or the slot's master on a Cluster). */
  private readonly server: SlotServer
  private readonly retentionMs: number
  private readonly timeoutMs: number
  private blocking: RedisClient | undefined
  private feedConnection: RedisClient | undefined
  private readonly feed: ChangeFeedReader
  /** '+' or '-' (change feed on or off) and the key prefix: ARGV[1] of every script. */
  private readonly scriptPrefix: string
  private sharedWait: Promise<void> | undefined
  private closed = false
  private readonly fenced: boolean
  /**
   * The `run_id` of the server this process verified on its current connection (INFO server),
   * passed to fenced claims and lock acquisitions. Forgotten whenever the connection closes; the
   * generation counts closes, so a claim whose connection dropped while it was in flight (ioredis
   * re-sends it to whatever server answers next) is detected and given back.
   */
  private runId: string | undefined
  private generation = 0
  private readonly blockedListeners: ((reason: 'epoch' | 'fence') => void)[] = []
  private readonly eventKeys: ReturnType<typeof eventKeys>
  private readonly eventReaders: EventReaders
  /** The flow config (JSON for flow.lua) still to be stored before the first script runs. */
  private flowToWrite: string | undefined
  private flowWriting: Promise<void> | undefined

  constructor(queueName: string, options: RedisBrokerOptions) {
    this.queueName = queueName
    this.keys = queueKeys(queueName)
    this.handle = connectRedis(options.redis, {
      timeoutMs: options.timeoutMs,
      logger: options.logger,
      name: queueName,
    })
    this.redis = this.handle.client
    this.retentionMs = options.retentionMs ?? DAY
    this.timeoutMs = options.timeoutMs ?? BROKER_TIMEOUT_MS
    this.scriptPrefix = (options.changeFeed ? '+' : '-') + this.keys.prefix
    this.feed = new ChangeFeedReader(this.redis, `${this.keys.prefix}changes`, this.timeoutMs)
    this.fenced = options.fenced === true
    this.eventKeys = eventKeys(this.keys.prefix)
    this.eventReaders = new EventReaders(this.handle, this.eventKeys.stream)
    this.flowToWrite = options.flow && encodeFlowConfig(options.flow)
    const flowJson = this.flowToWrite
    this.server = new SlotServer(this.redis, `${this.keys.prefix}base`)
    this.server.onChange(() => {
      this.runId = undefined
      this.generation++
      // The server may come back without its data: the queue's flow config is written again.
      if (flowJson !== undefined) this.flowToWrite = flowJson
      this.flowWriting = undefined
    })
  }

  /** The run_id of the server on the command connection, read now (INFO server). */
  private async readRunId(): Promise<string> {
    const generation = this.generation
    const runId = await io(this.server.runId())
    if (generation === this.generation) this.runId = runId
    return runId
  }

  private async verifiedRunId(): Promise<string> {
    return this.runId ?? (await this.readRunId())
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

  onBlocked(listener: (reason: 'epoch' | 'fence') => void): void {
    this.blockedListeners.push(listener)
  }

  /** The command connection, for other Redis users in the package (the HTTP rate limiter). */
  get client(): RedisClient {
    return this.redis
  }

  private bounded<T>(exec: Promise<T>): Promise<T> {
    return bounded(exec, this.timeoutMs)
  }

  private run(name: ScriptName, args: readonly (string | number)[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new TaskloomError('CLOSED', `queue ${this.queueName} is closed`))
    if (this.flowToWrite !== undefined) return this.writeFlow().then(() => this.run(name, args))
    return io(runScript(this.redis, name, this.keys.script, [this.scriptPrefix, ...args]))
  }

  /** Stores the queue's flow config once, before this broker's first script (retried on failure). */
  private writeFlow(): Promise<void> {
    const json = this.flowToWrite!
    this.flowWriting ??= io(
      runScript(this.redis, 'flow', this.keys.script, [this.scriptPrefix, 'config', Date.now(), json]),
    ).then(
      () => {
        this.flowToWrite = undefined
      },
      (err: unknown) => {
        this.flowWriting = undefined
        throw err
      },
    )
    return this.flowWriting
  }

  async enqueue(tasks: readonly NewTask[], now: number): Promise<EnqueueResult[]> {
    if (tasks.length === 0) return []
    if (tasks.some((t) => t.dependsOn?.length)) return (await this.enqueueFlow(tasks, now)).results
    const args: (string | number)[] = [now, tasks.length]
    for (const t of tasks) {
      args.push(t.id, t.name, t.tenantId, t.payload, priorityIndex(t.priority), t.runAt, t.timeoutMs)
      args.push(t.maxRetries, t.createdAt, t.idempotencyKey ?? '', t.idempotencyTtlMs, t.attempt ?? 0)
      args.push(t.lockKey ?? '', t.tc ?? '')
    }
    for (const t of tasks) args.push(t.group ?? '')
    const reply = (await this.run('enqueue', args)) as string[]
    if (this.handle.waitReplicas > 0) await this.waitReplicas()
    const out: EnqueueResult[] = []
    for (let i = 0; i < reply.length; i += 4) {
      out.push({
        id: reply[i]!,
        status: reply[i + 1] as EnqueueResult['status'],
        createdAt: Number(reply[i + 2]),
        deduplicated: reply[i + 3] === '1',
      })
    }
    return out
  }

  /** `waitReplicas`: the submit's writes reached that many replicas (WAIT), or it fails. */
  private async waitReplicas(): Promise<void> {
    await io(this.server.waitReplicas(this.handle.waitReplicas, Math.round(this.timeoutMs * 0.8)))
  }

  async enqueueFlow(
    tasks: readonly NewTask[],
    now: number,
    flow?: { record: FlowRecord; key?: FlowKey | undefined },
  ): Promise<FlowEnqueueResult> {
    const args = enqueueFlowArgs(this.keys, tasks, now, this.retentionMs, flow)
    return decodeFlowReply((await this.run('enqueueFlow', args)) as unknown[], tasks)
  }

  async getFlow(id: string): Promise<FlowRecord | null> {
    this.assertOpen()
    const json = await io(this.redis.get(`${this.keys.prefix}flow:${id}`))
    return json === null ? null : (JSON.parse(json) as FlowRecord)
  }

  async getTasks(refs: readonly DependentRef[]): Promise<(TaskRecord | null)[]> {
    this.assertOpen()
    const replies = await io(readTasks(this.redis, refs))
    return replies.map(([hash, deps, waits], i) => {
      const record = decodeTask(refs[i]!.id, hash)
      return record && { ...record, ...dependencyFields(hash, deps, waits) }
    })
  }

  async claim(workerId: string, max: number, leaseMs: number, now: number): Promise<ClaimResult> {
    const run = this.fenced ? await this.verifiedRunId() : ''
    const generation = this.generation
    const args = [now, max, now + leaseMs, workerId, MAINTENANCE_LIMIT, LEASE_EXPIRED, run, FENCE_LOW_WATER]
    const reply = (await this.run('claim', args)) as string[]
    const flag = reply[1]
    if (flag === 'epoch' || flag === 'fence') {
      if (flag === 'epoch') this.runId = undefined
      this.blocked(flag)
      return { tasks: [], nextWakeAt: now + BLOCKED_RETRY_MS, blocked: flag }
    }
    if (flag === 'low') this.blocked('fence')
    const tasks: ClaimedTask[] = []
    for (let i = 2; i < reply.length; i += 15) {
      tasks.push({
        id: reply[i]!,
        name: reply[i + 1]!,
        tenantId: reply[i + 2]!,
        payload: reply[i + 3]!,
        priority: PRIORITIES[Number(reply[i + 4])] ?? 'normal',
        attempt: Number(reply[i + 5]),
        maxRetries: Number(reply[i + 6]),
        timeoutMs: Number(reply[i + 7]),
        createdAt: Number(reply[i + 8]),
        runAt: Number(reply[i + 9]),
        token: Number(reply[i + 10]),
        lockKey: reply[i + 11] || undefined,
        tc: reply[i + 12] || undefined,
        idempotencyKey: reply[i + 13] || undefined,
        group: reply[i + 14] || undefined,
      })
    }
    if (this.fenced && generation !== this.generation && tasks.length > 0) {
      // The connection dropped while this claim was in flight: ioredis may have re-sent it, with the
      // run_id verified before, to a server that restarted meanwhile. Its tokens cannot be trusted,
      // so the tasks are given back (the attempt does not count) and claimed again once re-based.
      this.runId = undefined
      await this.release(tasks, now).catch(() => {})
      this.blocked('epoch')
      return { tasks: [], nextWakeAt: now + BLOCKED_RETRY_MS, blocked: 'epoch' }
    }
    return { tasks, nextWakeAt: reply[0] ? Number(reply[0]) : null }
  }

  async complete(items: readonly Completion[], now: number): Promise<FencedOutcome[]> {
    if (items.length === 0) return []
    const args: (string | number)[] = [now, this.retentionMs, items.length]
    for (const c of items) args.push(c.id, c.token, c.result)
    return this.settle('complete', args)
  }

  async fail(items: readonly Failure[], now: number): Promise<FencedOutcome[]> {
    if (items.length === 0) return []
    const args: (string | number)[] = [now, items.length]
    for (const f of items) args.push(f.id, f.token, JSON.stringify(f.error), f.outcome, f.retryAt ?? '')
    return this.settle('fail', args)
  }

  /**
   * Runs complete or fail. Fenced, they are judged only against data re-based for this server: a
   * Redis rolled back to before a later claim would otherwise accept an older attempt's outcome.
   * While it is not, the call waits (the re-base is asked for at once), up to SETTLE_WAIT_MS.
   */
  private async settle(
    name: 'complete' | 'fail' | 'report',
    args: (string | number)[],
  ): Promise<FencedOutcome[]> {
    if (!this.fenced) return outcomes(await this.run(name, [...args, '']))
    const deadline = Date.now() + SETTLE_WAIT_MS
    for (;;) {
      const generation = this.generation
      const reply = await this.run(name, [...args, await this.verifiedRunId()])
      // Answered across a reconnect: judged maybe by a server that restarted meanwhile; ask again.
      if (reply !== -1 && generation === this.generation) return outcomes(reply)
      if (reply === -1) {
        this.runId = undefined
        this.blocked('epoch')
      }
      if (Date.now() >= deadline) {
        throw new TaskloomError(
          'BROKER_UNAVAILABLE',
          `queue ${this.queueName}: Redis is being re-based after it restarted or lost data; try again`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, BLOCKED_RETRY_MS))
    }
  }

  async extend(items: readonly Fenced[], leaseMs: number, now: number): Promise<FencedOutcome[]> {
    if (items.length === 0) return []
    const args: (string | number)[] = [now + leaseMs, items.length]
    for (const f of items) args.push(f.id, f.token)
    return outcomes(await this.run('extend', args))
  }

  async release(items: readonly Fenced[], now: number): Promise<FencedOutcome[]> {
    if (items.length === 0) return []
    const args: (string | number)[] = [now, items.length]
    for (const f of items) args.push(f.id, f.token)
    return outcomes(await this.run('release', args))
  }

  async cancel(id: string, now: number): Promise<TaskRecord> {
    const reply = await this.run('cancel', [now, this.retentionMs, id])
    if (reply === -1) throw new TaskloomError('NOT_FOUND', `task ${id} not found`)
    if (reply === -2)
      throw new TaskloomError('TASK_PROCESSING', `task ${id} is processing and cannot be cancelled`)
    if (reply === -3) throw new TaskloomError('TASK_FINISHED', `task ${id} has already finished`)
    return decodeTask(id, pairsToObject(reply as string[]))!
  }

  async get(id: string): Promise<TaskRecord | null> {
    this.assertOpen()
    if (!this.fenced) return (await this.getTasks([{ queue: this.queueName, id }]))[0]!
    // Fenced: only a re-based copy is answered (one round trip with the marker); the caller reads
    // the store instead, so a reader never sees a rolled-back status.
    const run = await this.verifiedRunId()
    const generation = this.generation
    const read = this.redis.multi().hgetall(this.keys.task(id)).hmget(`${this.keys.prefix}base`, 'run', 'ph')
    readDependencySets(read, this.keys, id)
    const [[, hash], [, base], [, deps], [, waits]] = (await io(this.bounded(read.exec()))) as [
      [unknown, Record<string, string>],
      [unknown, (string | null)[]],
      [unknown, string[]],
      [unknown, string[]],
    ]
    // A reply across a reconnect may come from a server that restarted meanwhile (see `claim`).
    if (base[0] !== run || base[1] === 'r' || generation !== this.generation) return null
    const record = decodeTask(id, hash)
    return record && { ...record, ...dependencyFields(hash, deps, waits) }
  }

  async listDead(limit: number, offset: number): Promise<Page<TaskRecord>> {
    this.assertOpen()
    const [ids, total] = await io(
      Promise.all([
        this.redis.zrevrange(this.keys.dlq, offset, offset + limit - 1),
        this.redis.zcard(this.keys.dlq),
      ]),
    )
    const hashes = await io(Promise.all(ids.map((id) => this.redis.hgetall(this.keys.task(id)))))
    const items = ids.flatMap((id, i) => decodeTask(id, hashes[i]!) ?? [])
    return { items, total }
  }

  async retryDead(ids: readonly string[], now: number): Promise<number> {
    if (ids.length === 0) return 0
    return ((await this.run('retryDead', [now, 'ids', 0, ...ids])) as string[]).length
  }

  async retryAllDead(max: number, now: number): Promise<string[]> {
    return (await this.run('retryDead', [now, 'all', max])) as string[]
  }

  async counts(options: CountsOptions = {}): Promise<QueueCounts> {
    this.assertOpen()
    const k = this.keys
    // One round trip for the sizes (and, when asked, the next few ids of each level: claims RPOP,
    // so the tail is the oldest), a second for those tasks' status and runnable-at time.
    const sizes = this.redis.pipeline()
    for (const key of k.ready) sizes.llen(key)
    sizes.zcard(k.delayed).zcard(k.leases).zcard(k.dlq)
    // Tasks in flow lanes (queues with fairness or group limits), per level.
    sizes.hmget(`${k.prefix}lanelen`, '0', '1', '2', '3')
    if (options.oldestReady) for (const key of k.ready) sizes.lrange(key, -OLDEST_READY_WINDOW, -1)
    const replies = (await io(this.bounded(sizes.exec()))) ?? []
    const value = <T>(i: number): T => {
      const [err, v] = replies[i] ?? [new Error('no reply')]
      // A pipeline resolves with each command's error (a timeout too): report it as the broker's.
      if (err) throw unavailable(err)
      return v as T
    }
    const n = PRIORITIES.length
    const lanes = value<(string | null)[]>(n + 3)
    const counts: QueueCounts = {
      ready: Object.fromEntries(
        PRIORITIES.map((p, i) => [p, value<number>(i) + Number(lanes[i] ?? 0)]),
      ) as QueueCounts['ready'],
      delayed: value<number>(n),
      processing: value<number>(n + 1),
      dead: value<number>(n + 2),
    }
    if (!options.oldestReady) return counts
    const tails = PRIORITIES.map((_, i) => value<string[]>(n + 4 + i).reverse())
    return { ...counts, oldestReadyAt: await this.oldestReadyAt(tails) }
  }

  async eventCounts(): Promise<EventCount[]> {
    this.assertOpen()
    const fields = await io(this.redis.hgetall(`${this.keys.prefix}stats`))
    const out: EventCount[] = []
    for (const [field, value] of Object.entries(fields)) {
      const parsed = parseTallyField(field)
      if (!parsed) continue
      const [event, tenantId, taskName, detail] = parsed
      out.push({
        event,
        tenantId,
        taskName,
        detail: event === 'submitted' ? (PRIORITIES[Number(detail)] ?? detail) : detail,
        count: Number(value),
      })
    }
    return out
  }

  /** Per level, the runnable-at time of the first queued task among `tails` (oldest first). */
  private async oldestReadyAt(tails: string[][]): Promise<Record<Priority, number | null>> {
    const out = Object.fromEntries(PRIORITIES.map((p) => [p, null])) as Record<Priority, number | null>
    const ids = tails.flat()
    if (ids.length === 0) return out
    const reads = this.redis.pipeline()
    for (const id of ids) reads.hmget(this.keys.task(id), 's', 'ra')
    const replies = (await io(this.bounded(reads.exec()))) ?? []
    let at = 0
    PRIORITIES.forEach((priority, level) => {
      let last: number | null = null
      for (const _ of tails[level]!) {
        const [err, rec] = replies[at++] ?? [null, null]
        if (err || out[priority] !== null || !Array.isArray(rec)) continue
        const runAt = rec[1] ? Number(rec[1]) : null
        if (rec[0] === 'queued') out[priority] = runAt
        else if (runAt !== null) last = runAt
      }
      // Only tombstones in the window: the last one's time bounds the live task behind it.
      if (out[priority] === null && last !== null) out[priority] = last
    })
    return out
  }

  /**
   * Idle workers block on the marker zset (BZPOPMIN) on one connection per broker; concurrent
   * waiters in this process share that one blocking call, and each keeps its own timeout and abort.
   */
  async waitForWork(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.closed || signal.aborted) return
    this.sharedWait ??= this.blockOnMarker(timeoutMs).finally(() => {
      this.sharedWait = undefined
    })
    const shared = this.sharedWait
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs)
      signal.addEventListener('abort', finish, { once: true })
      void shared.then(finish)
      function finish() {
        clearTimeout(timer)
        signal.removeEventListener('abort', finish)
        resolve()
      }
    })
  }

  private async blockOnMarker(timeoutMs: number): Promise<void> {
    this.blocking ??= this.handle.duplicate()
    try {
      await this.blocking.bzpopmin(this.keys.marker, Math.max(timeoutMs, 10) / 1000)
    } catch {
      // Closed, or a dropped connection: the caller claims and waits again.
    }
  }

  async ensureEpoch(now: number, restoreLeaseMs: number): Promise<EpochGrant> {
    // Read afresh, not from the cache: this is where a restarted or replaced server is noticed.
    const run = await this.readRunId()
    const reply = (await this.run('epoch', [now, 'ensure', run, restoreLeaseMs])) as string
    if (reply === '') return { created: false }
    if (reply === 'stale') {
      // The server restarted between INFO and this call: the next check verifies it again.
      this.runId = undefined
      return { created: false }
    }
    if (reply === 'missing' || reply === 'changed') return { created: true, cause: reply, phase: 'rebasing' }
    return { created: true, cause: 'resume', phase: reply === 'resume-f' ? 'filling' : 'rebasing' }
  }

  async markEpoch(now: number, state: EpochState, restoreLeaseMs: number): Promise<void> {
    const op = { restoring: 'renew', serving: 'serve', done: 'done', abandoned: 'abandon' }[state]
    const run = await this.verifiedRunId()
    if ((await this.run('epoch', [now, op, run, restoreLeaseMs])) !== 1) this.markerMoved()
  }

  async raiseFences(base: number, ceiling: number): Promise<void> {
    const run = await this.verifiedRunId()
    const args = [Date.now(), 'fences', run, String(base), String(ceiling)]
    if ((await this.run('epoch', args)) !== 1) this.markerMoved()
  }

  private markerMoved(): never {
    this.runId = undefined
    throw new TaskloomError(
      'BROKER_UNAVAILABLE',
      `queue ${this.queueName}: Redis changed (restarted or replaced) during the re-base; it will be re-based again`,
    )
  }

  async heldIds(cursor: string | null, limit: number): Promise<HeldPage> {
    this.assertOpen()
    // Cursor: "<section index>:<position>". Lists are read from the tail (the oldest end), where
    // LPUSHes of new work do not shift positions; zsets by ZSCAN, which returns every member held
    // for the whole scan at least once.
    const [from, at] = cursor === null ? ['0', '0'] : cursor.split(':')
    let index = Number(from)
    let position = at ?? '0'
    const ids: string[] = []
    while (index < HELD_SECTIONS.length && ids.length < limit) {
      const key = `${this.keys.prefix}${HELD_SECTIONS[index]}`
      let done: boolean
      if (index < 4) {
        const offset = Number(position)
        const page = await this.redis.lrange(key, -(offset + limit), -(offset + 1))
        ids.push(...page.reverse())
        done = page.length < limit
        position = String(offset + page.length)
      } else {
        const [next, flat] = await this.redis.zscan(key, position, 'COUNT', limit)
        for (let i = 0; i < flat.length; i += 2) ids.push(flat[i]!)
        done = next === '0'
        position = next
      }
      if (done) [index, position] = [index + 1, '0']
    }
    return { ids, nextCursor: index >= HELD_SECTIONS.length ? null : `${index}:${position}` }
  }

  async restore(tasks: readonly RestoredTask[], now: number): Promise<number> {
    if (tasks.length === 0) return 0
    const args: (string | number)[] = [now, this.retentionMs, tasks.length]
    for (const t of tasks) {
      args.push(t.id, t.name, t.tenantId, t.payload, priorityIndex(t.priority), t.runAt, t.timeoutMs)
      args.push(t.maxRetries, t.createdAt, t.attempt, t.lockKey ?? '', t.status, t.updatedAt)
      const extra = t.status === 'completed' ? (t.result ?? '') : t.error ? JSON.stringify(t.error) : ''
      args.push(t.finishedAt ?? '', extra, t.idempotencyKey ?? '')
    }
    return (await this.run('restore', args)) as number
  }

  async readChanges(
    consumer: string,
    max: number,
    blockMs: number,
    reclaimAfterMs: number,
  ): Promise<ChangeBatch> {
    this.assertOpen()
    this.feedConnection ??= this.handle.duplicate()
    const connection = this.feedConnection
    try {
      return await this.feed.read(connection, consumer, max, blockMs, reclaimAfterMs)
    } catch (err) {
      // A read left hanging (a failover on a Cluster): the next read opens a fresh connection.
      if (this.feedConnection === connection) this.feedConnection = undefined
      connection.disconnect()
      throw err
    }
  }

  async ackChanges(ids: readonly string[]): Promise<void> {
    this.assertOpen()
    await this.feed.ack(ids)
  }

  // --- Task output and queue events (issue 17; ./events.ts) ---

  async report(items: readonly TaskReport[], maxLogLines: number, now: number): Promise<FencedOutcome[]> {
    if (items.length === 0) return []
    const args: (string | number)[] = [now, items.length, maxLogLines]
    for (const r of items) {
      args.push(r.id, r.token, r.progress === undefined ? 'l' : 'p', r.progress ?? r.log ?? '')
    }
    return this.settle('report', args)
  }

  async logs(id: string): Promise<TaskLogLine[] | null> {
    this.assertOpen()
    const [[, held], [, lines]] = (await io(
      this.redis.multi().exists(this.keys.task(id)).lrange(this.eventKeys.logs(id), 0, -1).exec(),
    )) as [[unknown, number], [unknown, string[]]]
    return held ? lines.map(decodeLogLine) : null
  }

  async listenEvents(keepMs: number, maxLen: number): Promise<void> {
    this.assertOpen()
    await io(this.redis.set(this.eventKeys.interest, String(maxLen), 'PX', keepMs))
  }

  async lastEventId(): Promise<string> {
    this.assertOpen()
    const last = (await io(this.redis.xrevrange(this.eventKeys.stream, '+', '-', 'COUNT', 1))) as [
      string,
      string[],
    ][]
    return last[0]?.[0] ?? '0-0'
  }

  async readEvents(
    after: string,
    max: number,
    blockMs: number,
    signal?: AbortSignal,
  ): Promise<QueueEventRecord[]> {
    this.assertOpen()
    return io(this.eventReaders.read(after, max, blockMs, signal))
  }

  async holdChanges(consumer: string, ids: readonly string[]): Promise<void> {
    this.assertOpen()
    await this.feed.hold(consumer, ids)
  }

  async acquireLock(key: string, ttlMs: number, now: number): Promise<LockGrant> {
    const run = this.fenced ? await this.verifiedRunId() : ''
    const generation = this.generation
    const reply = (await this.run('lock', ['acquire', key, now, ttlMs, '', run])) as (string | number)[]
    if (Number(reply[0]) === 1) {
      const token = Number(reply[1])
      if (this.fenced && generation !== this.generation) {
        // Answered across a reconnect, maybe by a restarted server: the token cannot be trusted.
        this.runId = undefined
        await this.releaseLock(key, token, now).catch(() => false)
        this.blocked('epoch')
        return { acquired: false, heldUntil: now + BLOCKED_RETRY_MS, blocked: 'epoch' }
      }
      return { acquired: true, token, expiresAt: Number(reply[2]) }
    }
    if (Number(reply[0]) === 2) {
      const reason = reply[1] === 'fence' ? 'fence' : 'epoch'
      if (reason === 'epoch') this.runId = undefined
      this.blocked(reason)
      return { acquired: false, heldUntil: now + BLOCKED_RETRY_MS, blocked: reason }
    }
    return { acquired: false, heldUntil: Number(reply[1]) }
  }

  async extendLock(key: string, token: number, ttlMs: number, now: number): Promise<boolean> {
    return (await this.run('lock', ['extend', key, now, ttlMs, String(token), ''])) === 1
  }

  async releaseLock(key: string, token: number, now: number): Promise<boolean> {
    return (await this.run('lock', ['release', key, now, 0, String(token), ''])) === 1
  }

  async defer(items: readonly Fenced[], runAt: number, now: number, by = ''): Promise<FencedOutcome[]> {
    if (items.length === 0) return []
    const args: (string | number)[] = [now, runAt, items.length]
    for (const f of items) args.push(f.id, f.token)
    args.push(by)
    return outcomes(await this.run('defer', args))
  }

  async breaker(call: BreakerCall, now: number): Promise<BreakerReply> {
    const s = call.settings
    const reply = (await this.run('breaker', [
      call.op,
      call.name,
      now,
      s.failureThreshold,
      s.resetMs,
      s.trialMs,
      call.trialUntil ?? '',
    ])) as (string | number)[]
    return {
      state: reply[0] as BreakerReply['state'],
      failures: Number(reply[1]),
      openUntil: reply[2] === '' ? null : Number(reply[2]),
      allowed: Number(reply[3]) === 1,
      trial: Number(reply[4]) === 1,
      opened: Number(reply[5]) === 1,
    }
  }

  async heartbeat(beat: WorkerBeat, now: number): Promise<void> {
    await this.run('fleet', [
      'beat',
      now,
      beat.id,
      JSON.stringify(beat),
      beat.lastHeartbeat + 3 * beat.heartbeatMs,
    ])
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.run('fleet', ['remove', Date.now(), workerId])
  }

  async listWorkers(): Promise<WorkerBeat[]> {
    this.assertOpen()
    const all = await io(this.redis.hvals(`${this.keys.prefix}workers`))
    return all.map((json) => JSON.parse(json) as WorkerBeat)
  }

  async reapWorkers(now: number): Promise<ReapedWorker[]> {
    const reply = (await this.run('fleet', ['reap', now, WORKER_RETAIN_MS])) as (string | number)[]
    const out: ReapedWorker[] = []
    for (let i = 0; i < reply.length; i += 2) out.push({ id: String(reply[i]), tasks: Number(reply[i + 1]) })
    return out
  }

  async pause(scope: FlowScope, now: number): Promise<void> {
    await this.run('flow', ['pause', now, flowScopeKey(scope)])
  }

  async resume(scope: FlowScope, now: number): Promise<void> {
    await this.run('flow', ['resume', now, flowScopeKey(scope)])
  }

  async throttle(
    items: readonly Fenced[],
    scope: FlowScope,
    until: number,
    now: number,
  ): Promise<FencedOutcome[]> {
    const args: (string | number)[] = ['throttle', now, flowScopeKey(scope), until, items.length]
    for (const f of items) args.push(f.id, f.token)
    return outcomes(await this.run('flow', args))
  }

  async flowState(now: number): Promise<FlowState> {
    return decodeFlowState((await this.run('flow', ['state', now, FLOW_STATE_GROUPS])) as string)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.blocking?.disconnect()
    this.blocking = undefined
    this.feedConnection?.disconnect()
    this.feedConnection = undefined
    this.eventReaders.close()
    await this.handle.close()
  }

  private assertOpen(): void {
    if (this.closed) throw new TaskloomError('CLOSED', `queue ${this.queueName} is closed`)
  }
}

const TASK_EVENTS: ReadonlySet<string> = new Set<EventCount['event']>([
  'submitted',
  'completed',
  'attempt_failed',
  'retried',
  'dead_lettered',
  'lease_expired',
  'cancelled',
  'dead_letter_retried',
])

/** A `stats` hash field (JSON [event, tenant, name, detail], see common.lua), or undefined if foreign. */
function parseTallyField(field: string): [EventCount['event'], string, string, string] | undefined {
  try {
    const v = JSON.parse(field) as unknown
    if (!Array.isArray(v) || v.length !== 4 || !TASK_EVENTS.has(v[0])) return undefined
    if (!v.every((x) => typeof x === 'string')) return undefined
    return v as [EventCount['event'], string, string, string]
  } catch {
    return undefined
  }
}
