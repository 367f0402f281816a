export type { Broker, QueueCounts, TaskRecord } from './broker/broker.js'
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
export { type MigrateResult, migrateDatabase as migrate } from './store/postgres/migrate-database.js'
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
export { type CloseOptions, createWorker, Worker, type WorkerOptions } from './worker/worker.js'
