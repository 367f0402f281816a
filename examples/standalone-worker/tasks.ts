/**
 * Task definitions shared by the producer and the worker: both import this module, so the input
 * type the producer submits is the one the worker's handler receives.
 */
import { z } from 'zod'
import { defineTask } from '../../src/index.js'

export const generateReport = defineTask({
  name: 'generate-report',
  input: z.object({
    accountId: z.string().min(1),
    month: z.string().regex(/^\d{4}-\d{2}$/, 'YYYY-MM'),
  }),
  defaults: { priority: 'normal', maxRetries: 3, timeoutMs: 60_000 },
})

/** Connection and queue name from the environment, with the same defaults as the tests. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
export const QUEUE_NAME = process.env.QUEUE_NAME ?? 'reports'
