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
export type { FlowOptions } from './flow/config.js'
export { RateLimitedError, type RateLimitedOptions } from './flow/rate-limited.js'
export { createJsonLogger, type Logger, type LogLevel, pinoOptions } from './logger.js'
export type { EncryptionOptions } from './queue/codec.js'
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
export { type MigrateResult, migrateDatabase as migrate } from './store/postgres/migrate-database.js'
export type { MisfirePolicy } from './store/store.js'
export { defineTask, type TaskDefaults, type TaskDefinition, type TaskSpec } from './task/define-task.js'
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
export type { WorkerEventName, WorkerEvents } from './worker/events.js'
export {
  type CloseOptions,
  createWorker,
  Worker,
  type WorkerOptions,
  type WorkerStats,
} from './worker/worker.js'
