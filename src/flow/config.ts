/**
 * Flow control's queue options (`createQueue({ fairness, weights, groupConcurrency, limits })`),
 * their validation, and the FlowConfig brokers enforce. See docs/flow-control.md.
 */
import { z } from 'zod'
import type { FlowConfig, FlowLimit, FlowScope } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import { GROUP } from '../task/validate.js'

export interface FlowControlOptions {
  /**
   * `'tenant'` (or `'group'`, the same: a task's group is its tenant unless `group` is given at
   * submit): claims rotate between the groups with ready work within each priority level, so one
   * group's backlog never holds the others back. Priorities stay strict. Default false: first in,
   * first out within a level.
   */
  fairness?: 'tenant' | 'group' | false
  /** Claim shares between groups under fairness, e.g. `{ acme: 3 }` (default 1 each). */
  weights?: Record<string, number>
  /**
   * Most tasks of one group processing at once across the fleet: a number for every group, or
   * `{ default, groups: { acme: 20 } }` with per-group overrides. Default: no cap.
   */
  groupConcurrency?: number | { default?: number; groups?: Record<string, number> }
  /**
   * Start-rate limits: at most `max` task starts in any `durationMs` window, for the whole queue,
   * per task name or per group; at most one limit of each `per`. Default: none.
   */
  limits?: FlowLimit[]
}

export const FLOW_OPTION_KEYS = ['fairness', 'weights', 'groupConcurrency', 'limits'] as const

const count = z.number().int().min(1).max(1_000_000)
export const flowSchema = z.object({
  fairness: z.union([z.enum(['tenant', 'group']), z.literal(false)]).optional(),
  weights: z.record(GROUP, z.number().int().min(1).max(1000)).optional(),
  groupConcurrency: z
    .union([count, z.strictObject({ default: count.optional(), groups: z.record(GROUP, count).optional() })])
    .optional(),
  limits: z
    .array(
      z.strictObject({
        per: z.enum(['queue', 'task', 'group']),
        max: count,
        durationMs: z.number().int().min(1).max(86_400_000),
      }),
    )
    .max(3)
    .refine((all) => new Set(all.map((l) => l.per)).size === all.length, 'at most one limit per `per`')
    .optional(),
})

/**
 * The broker's FlowConfig, or undefined when no flow option is given (the queue then leaves
 * whatever the fleet stored in force: a process that only submits or reads does not reset it).
 */
export function flowConfigOf(options: FlowControlOptions): FlowConfig | undefined {
  if (FLOW_OPTION_KEYS.every((k) => options[k] === undefined)) return undefined
  const gc = options.groupConcurrency
  return {
    fair: options.fairness === 'tenant' || options.fairness === 'group',
    weights: { ...options.weights },
    groupConcurrency: typeof gc === 'number' ? gc : (gc?.default ?? 0),
    groupCaps: typeof gc === 'object' ? { ...gc.groups } : {},
    limits: (options.limits ?? []).map((l) => ({ ...l })),
  }
}

/** Whether a config needs a ready lane per group (both brokers decide the same way). */
export function needsLanes(config: FlowConfig | undefined): boolean {
  if (!config) return false
  return (
    config.fair ||
    config.groupConcurrency > 0 ||
    Object.keys(config.groupCaps).length > 0 ||
    config.limits.some((l) => l.per === 'group')
  )
}

/** A group, task name or the queue, checked for pause/resume (the admin API and the CLI). */
export function checkScopeName(kind: 'task' | 'group', name: unknown): string {
  const ok = kind === 'group' ? GROUP.safeParse(name).success : typeof name === 'string' && name.length > 0
  if (!ok || typeof name !== 'string' || name.length > 200) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid ${kind} name ${JSON.stringify(name)}`, {
      issues: [{ path: kind, message: 'expected a valid name' }],
    })
  }
  return name
}

/** A scope as both brokers key it: 'q', 'n:<task name>' or 'g:<group>'. */
export function flowScopeKey(scope: FlowScope): string {
  if (scope.kind === 'queue') return 'q'
  return scope.kind === 'task' ? `n:${scope.name}` : `g:${scope.group}`
}
