export type {
  Broker,
  CountsOptions,
  EventCount,
  FlowGroupState,
  FlowLimit,
  FlowState,
  QueueCounts,
  TaskEvent,
  TaskRecord,
} from './broker/broker.js'
export type { RedisClient, RedisConnectionOptions, RedisInput } from './broker/redis/connection.js'
export type {
  Definitions,
  TaskDefinitionInfo,
} from './definitions/definitions.js'
export {
  ERROR_STATUS,
  type Issue,
  LeaseLostError,
  NonRetryableError,
  TaskloomError,
  type TaskloomErrorCode,
  TaskTimeoutError,
  toTaskloomError,
} from './errors.js'
// --- Queue events (issue 17) ---
export type { QueueEventHub, SubscribeOptions } from './events/hub.js'
export type { EventSubscription } from './events/subscription.js'
export type {
  QueueEventBase,
  QueueEventListener,
  QueueEventName,
  QueueEvents,
} from './events/types.js'
export type { AutoscaleOptions, ScaleDecision } from './fleet/autoscaler.js'
export {
  BREAKER_DEFAULTS,
  type BreakerHandle,
  type BreakerInfo,
  BreakerOpenError,
  type BreakerOptions,
} from './fleet/breakers.js'
export {
  type LivenessCheck,
  type LivenessOptions,
  type LivenessReport,
  livenessHandler,
} from './fleet/liveness.js'
export type { Lock, LockOptions } from './fleet/locks.js'
export type { WorkerInfo } from './fleet/workers.js'
export type { PauseTarget } from './flow/admin.js'
export type { FlowControlOptions } from './flow/config.js'
export { RateLimitedError, type RateLimitedOptions } from './flow/rate-limited.js'
export { createJsonLogger, type Logger, type LogLevel, pinoOptions } from './logger.js'
export { type EncryptionOptions, Sealed } from './queue/codec.js'
export type {
  ChainStep,
  FlowChild,
  FlowDag,
  FlowNode,
  FlowNodeStatus,
  FlowOptions,
  FlowResult,
  FlowSpec,
  FlowStatus,
  FlowTaskOptions,
  FlowTree,
} from './queue/flows.js'
export {
  type ActivityBucket,
  type DeadGroup,
  deadLetterGroups,
  deadLetterIds,
  findByIdempotencyKey,
  type QueueMode,
  type QueueSnapshot,
  queueActivity,
  queueMode,
  queueSnapshot,
  queueStatusCounts,
  type StatusCount,
} from './queue/insights.js'
export type { ListOptions, TaskResult } from './queue/queue.js'
export {
  createQueue,
  type ListPage,
  Queue,
  type QueueOptions,
  type SubmitEntry,
  type SubmitResult,
} from './queue/queue.js'
export type { TaskInfo } from './queue/task-info.js'
export type { LogsOptions, TaskLogEntry, TaskLogPage } from './queue/task-logs.js'
export {
  createScheduler,
  type FireEvent,
  Scheduler,
  type SchedulerOptions,
  tickKey,
} from './schedule/scheduler.js'
export type {
  ScheduleInfo,
  ScheduleInput,
  ScheduleListOptions,
  Schedules,
} from './schedule/schedules.js'
export { triggerSchedule } from './schedule/trigger.js'
export { type MigrateResult, migrateDatabase as migrate } from './store/postgres/migrate-database.js'
export type { MisfirePolicy } from './store/store.js'
export { defineTask, type TaskDefaults, type TaskDefinition, type TaskSpec } from './task/define-task.js'
export type { DependencyEdge, DependentRef } from './task/dependency-model.js'
export type { DependencyRef, FailurePolicy } from './task/dependency-options.js'
export {
  type AttemptOutcome,
  type AttemptRecord,
  type ErrorInfo,
  PRIORITIES,
  type Priority,
  TASK_STATUSES,
  type TaskStatus,
} from './task/model.js'
export type { SubmitOptions } from './task/validate.js'
export type { BackoffOptions } from './worker/backoff.js'
export type { TaskContext } from './worker/context.js'
export type { DependencyResult } from './worker/dependencies.js'
export type { WorkerEventName, WorkerEvents } from './worker/events.js'
export {
  type CloseOptions,
  createWorker,
  Worker,
  type WorkerOptions,
  type WorkerStats,
} from './worker/worker.js'
