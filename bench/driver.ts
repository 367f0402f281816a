/**
 * What a scenario needs from a job queue library. Each scenario is written once against this
 * interface, so taskloom (Redis-only and durable) and BullMQ are timed by the same code.
 */
import type { Scenario } from './config.js'

/** Every task's input: when it was submitted, in this process's `performance.now()` clock. */
export interface BenchInput {
  t: number
}

export interface Driver {
  /** Short label, used in queue names and as the column key: `tl`, `tlpg` or `bull`. */
  readonly id: string
  /** Column title. */
  readonly label: string
  /** Scenarios this driver runs; all when absent. */
  readonly scenarios?: readonly Scenario[]
  /** SCAN pattern of every key of queue `name`. */
  keyPattern(name: string): string
  /** Opens a handle on a fresh queue `name` with its connections ready. */
  open(name: string): Promise<QueueHandle>
  /** Deletes what queue `name` left outside Redis (durable mode: its rows in the store). */
  cleanup?(name: string): Promise<void>
  /** Releases what the driver itself holds, once at the end (durable mode: drops the bench schema). */
  dispose?(): Promise<void>
}

export interface QueueHandle {
  /** One submit; resolves once the library acknowledged it. */
  submit(input: BenchInput): Promise<void>
  /** Bulk pre-load (untimed): `count` tasks through the library's bulk call. */
  load(count: number): Promise<void>
  /** A worker with a noop handler, connected and ready; it claims nothing until `start()`. */
  worker(spec: WorkerSpec): Promise<WorkerHandle>
  /** From the library's own counters: tasks not finished yet (waiting, delayed, active) and failed ones. */
  counts(): Promise<{ unfinished: number; failed: number }>
  /**
   * Durable mode: tasks of this queue the store (PostgreSQL) shows as completed, read on a
   * connection of the runner's own. Absent for Redis-only libraries.
   */
  storeCompleted?(): Promise<number>
  /** Closes the connections this handle opened (not the keys: the runner deletes those). */
  close(): Promise<void>
}

export interface WorkerSpec {
  concurrency: number
  /** Called first thing in the handler. */
  onStart?(input: BenchInput): void
  /** Called once per task acknowledged as completed. */
  onCompleted(): void
  /** A failed task, a stale completion or a worker error: the run is invalid. */
  onError(error: unknown): void
}

export interface WorkerHandle {
  start(): void
  close(): Promise<void>
}
