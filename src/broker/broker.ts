/**
 * The Broker contract: the hot path of one queue (ready lists per priority, delayed tasks, leases,
 * fencing tokens, the dead-letter queue, idempotency keys). `RedisBroker` and `MemoryBroker`
 * implement it and pass one conformance suite (test/broker/conformance.ts).
 *
 * Payloads and results cross this boundary as strings: the queue serialises, the broker stores.
 * Times are epoch milliseconds. Every batch method answers item by item, in the order given.
 */

import type {
  DependencyEdge,
  DependencyFields,
  DependentRef,
  FlowKey,
  FlowRecord,
} from '../task/dependency-model.js'
import type {
  AttemptOutcome,
  AttemptRecord,
  ErrorInfo,
  Priority,
  QueueEventRecord,
  TaskChange,
  TaskLogLine,
  TaskOutput,
  TaskStatus,
} from '../task/model.js'

/**
 * Fenced brokers: fencing tokens are reserved in blocks of this size (one store write per block),
 * and the next block is asked for once fewer than half of one are left.
 */
export const FENCE_BLOCK = 200_000
export const FENCE_LOW_WATER = FENCE_BLOCK / 2

/** A task as the queue hands it to the broker. */
export interface NewTask {
  id: string
  name: string
  tenantId: string
  /** Serialised input. */
  payload: string
  priority: Priority
  /** When the task becomes claimable. At or before `now`: queued at once; later: pending. */
  runAt: number
  timeoutMs: number
  maxRetries: number
  createdAt: number
  /** At most one task per (tenantId, idempotencyKey) for `idempotencyTtlMs`, whatever its status. */
  idempotencyKey?: string | undefined
  idempotencyTtlMs: number
  /** Attempts already spent (recovery from the store re-enqueues in-flight tasks with them). Default 0. */
  attempt?: number | undefined
  /** Tasks sharing a lock key never run at the same time (see src/fleet). Default: none. */
  lockKey?: string | undefined
  /** Trace context of the submitter (W3C `traceparent`, then a newline and `tracestate` when there is one). */
  tc?: string | undefined
  /** Tasks it waits for (see src/task/dependency-model.ts); such tasks go through `enqueueFlow`. Default: none. */
  dependsOn?: DependencyEdge[] | undefined
  /** Flow-control group (fair scheduling, group limits). Default: the tenant. */
  group?: string | undefined
}

export interface EnqueueResult {
  id: string
  status: TaskStatus
  createdAt: number
  /** True when an idempotency key matched an existing task; `id` is then that task's. */
  deduplicated: boolean
}

/** Everything the broker knows of one task. */
export interface TaskRecord extends DependencyFields {
  id: string
  name: string
  tenantId: string
  payload: string
  priority: Priority
  status: TaskStatus
  /** Attempts started so far (0 before the first claim). */
  attempt: number
  maxRetries: number
  timeoutMs: number
  createdAt: number
  runAt: number
  /** Start of the latest attempt. */
  startedAt?: number | undefined
  /** When it reached completed, failed (dead-lettered) or cancelled. */
  finishedAt?: number | undefined
  /** Serialised result, once completed. */
  result?: string | undefined
  /** The last attempt's error, when one failed. */
  error?: ErrorInfo | undefined
  /** Failed attempts, oldest first. */
  history: AttemptRecord[]
  /** The worker holding (or last holding) the lease. */
  workerId?: string | undefined
  idempotencyKey?: string | undefined
  lockKey?: string | undefined
  /** The flow-control group given at submit (else the tenant is its group). */
  group?: string | undefined
  /** The last deferral (`defer`): what deferred the task (a breaker's name) and until when. */
  deferredBy?: string | undefined
  deferredUntil?: number | undefined
  // --- Task output (issue 17) ---
  /** JSON text of the latest `ctx.progress` value. */
  progress?: string | undefined
}

/** A task handed to a worker by `claim`. */
export interface ClaimedTask {
  id: string
  name: string
  tenantId: string
  payload: string
  priority: Priority
  /** 1 for the first attempt. */
  attempt: number
  maxRetries: number
  timeoutMs: number
  createdAt: number
  /** When it became claimable (for pickup latency). */
  runAt: number
  /** Fencing token: strictly greater than every token issued before it in this queue. */
  token: number
  /** The task's lock key, held by this claim until the task leaves processing. */
  lockKey?: string | undefined
  /** The submitter's trace context, as given to `enqueue` (see `NewTask.tc`). */
  tc?: string | undefined
  /** The idempotency key it was submitted with (a schedule's tick key names the schedule and tick). */
  idempotencyKey?: string | undefined
  /** Its flow-control group, when one was given at submit (else the tenant is its group). */
  group?: string | undefined
}

export interface ClaimResult {
  tasks: ClaimedTask[]
  /**
   * Fenced brokers only: why nothing was claimed although work may wait: 'epoch' (the broker's
   * data is not re-based for the server that holds it) or 'fence' (no token left below the
   * reserved ceiling). `nextWakeAt` is then a short retry time; the broker has told its
   * `onBlocked` listener, which re-bases or reserves the next block.
   */
  blocked?: 'epoch' | 'fence' | undefined
  /**
   * The earliest time at which a delayed task becomes due or a lease expires, or null when
   * there is neither. An idle worker waits no longer than this.
   */
  nextWakeAt: number | null
}

export interface Completion {
  id: string
  token: number
  /** Serialised result. */
  result: string
}

export interface Failure {
  id: string
  token: number
  error: ErrorInfo
  outcome: AttemptOutcome
  /** When to try again (the worker computes the backoff), or null to dead-letter the task now. */
  retryAt: number | null
}

export interface Fenced {
  id: string
  token: number
}

/**
 * 'ok': applied. 'stale': the token is not the task's current one or the task is no longer
 * processing (its lease expired and another worker took it, or it was dead-lettered); nothing changed.
 * Completing twice with the same token answers 'ok' both times (a retried flush is harmless).
 */
export type FencedOutcome = 'ok' | 'stale'

/**
 * What the broker counts, once for the whole fleet, in the same call that makes the change:
 * - `submitted`: a task accepted by enqueue (not an idempotent repeat, not a re-sent id);
 * - `completed`: a task that completed;
 * - `attempt_failed`: an attempt that ended with an error the worker reported (retried or not);
 * - `retried`: a failed attempt given another try;
 * - `dead_lettered`: a task that failed for good (moved to the dead-letter queue);
 * - `lease_expired`: a lease that expired before its worker settled it (a stalled task);
 * - `cancelled`: a task cancelled before it ran;
 * - `dead_letter_retried`: a dead-lettered task moved back to the queue.
 */
export type TaskEvent =
  | 'submitted'
  | 'completed'
  | 'attempt_failed'
  | 'retried'
  | 'dead_lettered'
  | 'lease_expired'
  | 'cancelled'
  | 'dead_letter_retried'

/** The running total of one event for one (tenant, task name, detail), since the broker's data began. */
export interface EventCount {
  event: TaskEvent
  tenantId: string
  taskName: string
  /** `submitted`: the priority; `attempt_failed` and `dead_lettered`: the error name; else ''. */
  detail: string
  count: number
}

export interface QueueCounts {
  /** Ready tasks per priority (may include cancelled tombstones not yet skipped). */
  ready: Record<Priority, number>
  delayed: number
  processing: number
  dead: number
  /**
   * Only when asked (`counts({ oldestReady: true })`): when the oldest ready task of each priority
   * (the next one a claim takes there) became claimable, epoch ms; null when the level holds none.
   * Cancelled tombstones are skipped (Redis looks at most `OLDEST_READY_WINDOW` entries deep: past
   * that many tombstones it answers the last one's time).
   */
  oldestReadyAt?: Record<Priority, number | null>
  /** Only when asked (`counts({ flow: true })`, read by the queue): pauses, waits and groups. */
  flow?: FlowState
}

export interface CountsOptions {
  /** Also read `oldestReadyAt` (on Redis, one more round trip). Default false. */
  oldestReady?: boolean
  /** Also read flow control's state (`queue.counts` only; one more round trip). Default false. */
  flow?: boolean
}

export interface Page<T> {
  items: T[]
  total: number
}

export interface BrokerOptions {
  /** How long finished (completed, cancelled) task records are kept. Default 24 h. */
  retentionMs?: number
  /**
   * Durable mode: every state change after enqueue (claim, lease expiry, completion, failure,
   * release, cancel, DLQ retry) is also written to a change feed, atomically with the change, for the
   * store to apply. Default false.
   */
  changeFeed?: boolean
  /**
   * Durable mode: fencing tokens (of claims and locks) are issued only up to a ceiling that the
   * store recorded first (`raiseFences`), and claims and lock acquisitions are refused until the
   * broker's data has been re-based for the server that holds it (`ensureEpoch` to
   * `markEpoch('serving')`). Default false: tokens are issued without a ceiling or a marker check.
   */
  fenced?: boolean
  /**
   * Flow control (src/flow): fair scheduling between groups, group concurrency and start-rate
   * limits. Redis keeps it with the queue's data for the whole fleet; omitted, whatever is stored
   * stays in force. Default: none.
   */
  flow?: FlowConfig | undefined
}

/** A task as the store records it, for `restore` (the store's row is ahead of the broker's copy). */
export interface RestoredTask extends NewTask {
  status: TaskStatus
  /** Attempts started in the current budget. */
  attempt: number
  /** When the store last changed the row. */
  updatedAt: number
  finishedAt?: number | undefined
  /** Serialised result (completed). */
  result?: string | undefined
  /** The last error (failed). */
  error?: ErrorInfo | undefined
}

/**
 * What `ensureEpoch` asks of its caller. `created` false: nothing (re-based already, or another
 * caller holds the restore lease). Otherwise `cause` says why: the marker was 'missing' (a new or
 * emptied server), 'changed' (it names another server: a restart, from an AOF/RDB file or not, or a
 * failover), or the previous re-baser's lease lapsed in phase 'rebasing' or 'filling' ('resume').
 */
export interface EpochGrant {
  created: boolean
  cause?: 'missing' | 'changed' | 'resume' | undefined
  /** With `created`: the phase to run from. 'rebasing': everything; 'filling': the store pass only. */
  phase?: 'rebasing' | 'filling' | undefined
}

export type EpochState = 'restoring' | 'serving' | 'done' | 'abandoned'

/** A page of the ids a broker holds (ready, delayed, leased or dead), for a re-base. */
export interface HeldPage {
  ids: string[]
  /** Pass to the next call; null after the last page. */
  nextCursor: string | null
}

/** Changes handed to one consumer; acknowledge `ids` once applied. */
export interface ChangeBatch {
  ids: string[]
  changes: TaskChange[]
  /** Progress and log lines reported by running attempts (`report`), in the order written. */
  outputs?: TaskOutput[] | undefined
}

/** One `ctx.progress` or `ctx.log` call of a running attempt, for `report`. */
export interface TaskReport {
  id: string
  token: number
  /** JSON text of a progress value. */
  progress?: string | undefined
  /** A log line. */
  log?: string | undefined
}

/**
 * What `enqueueFlow` answers: each task's result, in order; or, when the flow's key was seen within
 * its TTL, no results (nothing was added) and the flow that key made, `deduplicated`.
 */
export interface FlowEnqueueResult {
  results: EnqueueResult[]
  deduplicated: boolean
  flow?: FlowRecord | undefined
}

export interface Broker {
  /** Stable name of the queue this broker serves. */
  readonly queueName: string

  // --- Dependencies and flows (../task/dependency-model.ts) ---

  /**
   * Adds tasks that may depend on others, all or none, in one step: a dependency is a task this
   * broker's server holds (Redis: any queue of it; in-process: this queue) or an earlier task of
   * `tasks`, of the same tenant, else NOT_FOUND and nothing is added. With `flow`, records it (and
   * with `key`, a repeat within the key's TTL adds nothing and answers that flow). A task id
   * already held answers that task, as `enqueue` does.
   */
  enqueueFlow(
    tasks: readonly NewTask[],
    now: number,
    flow?: { record: FlowRecord; key?: FlowKey | undefined },
  ): Promise<FlowEnqueueResult>
  /** A flow recorded by `enqueueFlow`, or null. */
  getFlow(id: string): Promise<FlowRecord | null>
  /** Tasks by queue and id (a dependency may be another queue's), item by item, null when unknown. */
  getTasks(refs: readonly DependentRef[]): Promise<(TaskRecord | null)[]>

  /**
   * Adds tasks, or answers the existing task for an idempotency key seen within its TTL.
   * One round trip for the whole batch.
   */
  enqueue(tasks: readonly NewTask[], now: number): Promise<EnqueueResult[]>

  /**
   * Promotes due delayed tasks, returns expired leases to the queue (or to the dead-letter queue
   * once `attempt > maxRetries`), then leases up to `max` tasks in strict priority order, FIFO
   * within a level, each with a fresh fencing token and a lease until `now + leaseMs`.
   */
  claim(workerId: string, max: number, leaseMs: number, now: number): Promise<ClaimResult>

  /** Marks tasks completed, if each token is still current. */
  complete(items: readonly Completion[], now: number): Promise<FencedOutcome[]>

  /** Ends failed attempts: back to pending until `retryAt`, or into the dead-letter queue. */
  fail(items: readonly Failure[], now: number): Promise<FencedOutcome[]>

  /** Extends leases to `now + leaseMs`. A stale token answers 'stale' and extends nothing. */
  extend(items: readonly Fenced[], leaseMs: number, now: number): Promise<FencedOutcome[]>

  /**
   * Gives leases back at once (graceful shutdown): the tasks are queued again ahead of their
   * level, and the attempt does not count.
   */
  release(items: readonly Fenced[], now: number): Promise<FencedOutcome[]>

  /**
   * Cancels a pending or queued task and returns its record. Throws TaskloomError NOT_FOUND,
   * TASK_PROCESSING (it is running) or TASK_FINISHED (already terminal).
   */
  cancel(id: string, now: number): Promise<TaskRecord>

  /** The task, or null. Fenced brokers answer null until re-based (the caller reads the store). */
  get(id: string): Promise<TaskRecord | null>

  /** Dead-lettered tasks, most recent first. */
  listDead(limit: number, offset: number): Promise<Page<TaskRecord>>

  /**
   * Moves dead-lettered tasks back to the queue with a fresh attempt budget; ids not in the DLQ are
   * skipped. Answers how many moved.
   */
  retryDead(ids: readonly string[], now: number): Promise<number>

  /** Moves up to `max` dead-lettered tasks back (oldest first). Answers the ids moved, in that order. */
  retryAllDead(max: number, now: number): Promise<string[]>

  counts(options?: CountsOptions): Promise<QueueCounts>

  /** The queue's event totals (see TaskEvent), kept with the queue's data (in Redis: survive restarts). */
  eventCounts(): Promise<EventCount[]>

  /**
   * Resolves when work may be available (a task was enqueued or released), after `timeoutMs`,
   * or when `signal` aborts; whichever comes first. Never rejects on timeout or abort. Every waiter
   * of this broker object wakes; across processes at least one does, and a claim that leaves work
   * behind wakes the next.
   */
  waitForWork(timeoutMs: number, signal: AbortSignal): Promise<void>

  /**
   * The change feed (only with `changeFeed`): changes not yet handed out, oldest first, at most `max`
   * entries, waiting up to `blockMs` when there are none. An entry handed to a consumer that did not
   * acknowledge it within `reclaimAfterMs` is handed out again (the consumer died). Changes of one
   * entry are in the order they happened; applying an entry twice must be harmless.
   */
  readChanges(consumer: string, max: number, blockMs: number, reclaimAfterMs: number): Promise<ChangeBatch>

  /** Drops applied change-feed entries. */
  ackChanges(ids: readonly string[]): Promise<void>

  /**
   * Tells the change feed that `consumer` is alive and still applying `ids` (the store is slow or
   * down): they are not handed to another consumer for another `reclaimAfterMs`. Lets
   * `reclaimAfterMs` be short, so that the entries of a consumer that died are taken over at once.
   */
  holdChanges(consumer: string, ids: readonly string[]): Promise<void>

  /**
   * Checks the re-base marker, which names the server the broker's data was re-based on (Redis:
   * its `run_id`). When it is missing or names another server, or the last re-baser's lease
   * lapsed, exactly one caller gets `created: true` and must re-base (src/durable/recovery.ts):
   * `raiseFences`, then in phase 'rebasing' make the broker's own tasks agree with the store
   * (`heldIds` + `restore`), `markEpoch('serving')` (fenced claims are served from here on), then
   * restore the store's unfinished and dead tasks the broker lacks, renewing the lease with
   * `markEpoch('restoring')` after every page, and end with `markEpoch('done')`. While it holds the
   * lease, other callers get `created: false`.
   */
  ensureEpoch(now: number, restoreLeaseMs: number): Promise<EpochGrant>

  /**
   * Renews the restore lease (`restoring`), moves to the phase where claims are served
   * (`serving`, also renewing it), records that the re-base finished (`done`), or gives the lease up
   * after a failure (`abandoned`: the next caller resumes at once instead of after the lease). Throws
   * BROKER_UNAVAILABLE when the marker now names another server (it changed again meanwhile).
   */
  markEpoch(now: number, state: EpochState, restoreLeaseMs: number): Promise<void>

  /**
   * Raises the fencing counter to at least `base` and the ceiling to at least `ceiling` (a block
   * the store reserved: tokens up to it were recorded there first). Throws BROKER_UNAVAILABLE when
   * the marker names another server.
   */
  raiseFences(base: number, ceiling: number): Promise<void>

  /** The ids of the tasks this broker holds that are not completed or cancelled, a page at a time. */
  heldIds(cursor: string | null, limit: number): Promise<HeldPage>

  /** Makes the broker's copies of these tasks agree with the store's rows; answers how many changed. */
  restore(tasks: readonly RestoredTask[], now: number): Promise<number>

  /** Called whenever a fenced claim or lock acquisition is refused, or the ceiling is near. */
  onBlocked(listener: (reason: 'epoch' | 'fence') => void): void

  /** Releases connections this broker opened (not ones the user passed in). */
  close(): Promise<void>

  // --- Task output and queue events (issue 17; src/events) ---

  /**
   * Records progress values and log lines of running attempts, if each token is still current
   * ('stale' otherwise: the attempt lost its lease, and nothing is written). A task keeps its last
   * `maxLogLines` lines; they go with the task. With `changeFeed`, the same output is put on the feed.
   */
  report(items: readonly TaskReport[], maxLogLines: number, now: number): Promise<FencedOutcome[]>

  /** The task's log lines (the last ones kept), oldest first; null when the broker does not hold the task. */
  logs(id: string): Promise<TaskLogLine[] | null>

  /**
   * Queue events are written while someone may listen: this keeps them written for `keepMs` from now,
   * in a stream of the last `maxLen` or so (a listener renews it while it listens).
   */
  listenEvents(keepMs: number, maxLen: number): Promise<void>

  /** The id of the latest event, or '0-0' when there is none: read after it to see only newer ones. */
  lastEventId(): Promise<string>

  /**
   * Events written after `after` (an event id), oldest first, at most `max`, waiting up to `blockMs`
   * when there are none; `signal` ends the wait early. An id older than the stream's oldest answers
   * from the oldest kept.
   */
  readEvents(after: string, max: number, blockMs: number, signal?: AbortSignal): Promise<QueueEventRecord[]>
  // --- Flow control (src/flow): pauses, throttles and per-group state, fleet-wide ---

  /** Stops claims of the scope (running tasks go on; submits still succeed) until `resume`. */
  pause(scope: FlowScope, now: number): Promise<void>
  /** Lifts a pause (and a throttle) of the scope; its waiting tasks are claimable at once. */
  resume(scope: FlowScope, now: number): Promise<void>
  /**
   * Gives leases back without counting the attempt and stops claims of `scope` (a task name or a
   * group) until `until` (a handler's `RateLimitedError`). A longer throttle already set stays.
   */
  throttle(items: readonly Fenced[], scope: FlowScope, until: number, now: number): Promise<FencedOutcome[]>
  /** Pauses, throttles and per-group counts (the groups only on queues with group lanes). */
  flowState(now: number): Promise<FlowState>

  // --- Fleet coordination (src/fleet): distributed locks, breakers, deferral, worker heartbeats ---

  /**
   * Takes the lock `key` until `now + ttlMs` if it is free or its holder's time ran out. On success
   * answers a fencing token strictly greater than every token issued before for this key (drawn
   * from the queue's one fencing counter, so no state per key outlives the hold); when held,
   * answers when the current hold ends.
   */
  acquireLock(key: string, ttlMs: number, now: number): Promise<LockGrant>
  /** Pushes the hold out to `now + ttlMs` if `token` still holds `key`; false when the lock was lost. */
  extendLock(key: string, token: number, ttlMs: number, now: number): Promise<boolean>
  /** Frees `key` if `token` still holds it; false when the lock was lost (expired, maybe retaken). */
  releaseLock(key: string, token: number, now: number): Promise<boolean>

  /**
   * Gives leases back without counting the attempt and without running the task before `runAt`
   * (a circuit breaker is open): the task is pending until then. `by` (the breaker's name) is kept
   * on the task with `runAt` as `deferredBy` / `deferredUntil`, so a reader sees why it waits.
   */
  defer(items: readonly Fenced[], runAt: number, now: number, by?: string): Promise<FencedOutcome[]>

  /** Shared circuit-breaker state: see BreakerCall. */
  breaker(call: BreakerCall, now: number): Promise<BreakerReply>

  /** Records a worker's heartbeat (and keeps its entry `retainMs` after it falls silent). */
  heartbeat(beat: WorkerBeat, now: number): Promise<void>
  /** Removes a worker from the fleet listing (clean shutdown). */
  removeWorker(workerId: string): Promise<void>
  /** Every worker that heartbeated within its retention, with its latest beat. */
  listWorkers(): Promise<WorkerBeat[]>
  /**
   * Finds workers silent for more than 3 of their heartbeat intervals that are not yet marked
   * unhealthy, marks them, and makes their leases expire now, so the next claim re-queues those
   * tasks. Atomic: of two concurrent callers only one reclaims a given worker.
   */
  reapWorkers(now: number): Promise<ReapedWorker[]>
}

export type LockGrant =
  | { acquired: true; token: number; expiresAt: number }
  | { acquired: false; heldUntil: number; blocked?: undefined }
  /** Fenced brokers: refused until the broker is re-based or gets its next block of tokens. */
  | { acquired: false; heldUntil: number; blocked: 'epoch' | 'fence' }

export interface BreakerSettings {
  /** Consecutive failures that open the breaker. */
  failureThreshold: number
  /** How long it stays open before one trial is let through (half-open). */
  resetMs: number
  /** How long a half-open trial may take before another caller may try. */
  trialMs: number
}

/**
 * - `acquire`: may a task of this breaker run now? Closed: yes. Open: no, until `openUntil`.
 *   Open and due, or half-open with a lapsed trial: yes, as the one trial (`trial: true`).
 * - `success`: closes it and resets the failure count. `failure`: counts one; opens it at the
 *   threshold, or at once when it was half-open. `release`: the trial named by `trialUntil` ended
 *   without a verdict; if it is still the current one, the next `acquire` gets the trial at once. `state`: reads it. `reset`: closes it.
 */
export interface BreakerCall {
  name: string
  op: 'acquire' | 'success' | 'failure' | 'release' | 'state' | 'reset'
  settings: BreakerSettings
  /** `release`: the trial's deadline as `acquire` answered it (`openUntil`); names the trial. */
  trialUntil?: number | undefined
}

export interface BreakerReply {
  state: 'closed' | 'open' | 'half-open'
  failures: number
  /** When an open breaker lets a trial through; null when closed. */
  openUntil: number | null
  /** `acquire`: whether the caller may run; `failure`: whether this call opened the breaker. */
  allowed: boolean
  trial: boolean
  opened: boolean
}

/** One worker's heartbeat, as stored by the broker. */
export interface WorkerBeat {
  id: string
  /** The worker's own view; the listing turns a silent worker into 'unhealthy'. */
  status: 'active' | 'idle' | 'unhealthy'
  lastHeartbeat: number
  heartbeatMs: number
  tasksInHand: number
  tasksProcessed: number
  hostname: string
  pid: number
  concurrency: number
  startedAt: number
}

export interface ReapedWorker {
  id: string
  /** Leases made to expire. */
  tasks: number
}

/** What a pause or a throttle applies to. */
export type FlowScope = { kind: 'queue' } | { kind: 'task'; name: string } | { kind: 'group'; group: string }

/** A start-rate limit: at most `max` task starts in any `durationMs` window, per scope. */
export interface FlowLimit {
  per: 'queue' | 'task' | 'group'
  max: number
  durationMs: number
}

/** A queue's flow control, as the broker enforces it (see src/flow/options.ts for the user's side). */
export interface FlowConfig {
  /** Claims rotate between the groups with ready work within each priority level. */
  fair: boolean
  /** Relative claim shares per group (default 1). */
  weights: Record<string, number>
  /** Most tasks of one group processing at once, fleet-wide; 0: no cap. */
  groupConcurrency: number
  /** Per-group caps that override `groupConcurrency`. */
  groupCaps: Record<string, number>
  limits: FlowLimit[]
}

export interface FlowGroupState {
  group: string
  ready: number
  running: number
  /** Why its ready tasks wait, if they do. */
  blocked?: 'paused' | 'throttled' | 'capped' | 'rate-limited' | undefined
}

export interface FlowState {
  /** Whether the queue keeps a ready lane per group (fairness, group caps or group limits are on). */
  lanes: boolean
  paused: { queue: boolean; tasks: string[]; groups: string[] }
  /** Task names and groups stopped by a handler's `RateLimitedError` or a start-rate limit, until when. */
  waiting: { kind: 'task' | 'group' | 'queue'; name: string; until: number }[]
  /** Groups with ready or running tasks (lanes only), most ready first. */
  groups: FlowGroupState[]
}
