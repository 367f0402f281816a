/**
 * The in-process broker's ready tasks with flow control, the twin of flow-core.lua: a deque per
 * priority, or with lanes (fairness, group caps or group limits) a deque per (priority, group) and
 * a rotation of the groups that may run (stride scheduling: the lowest virtual time goes next and
 * gains 1/weight). Pauses, throttles and rate-limit windows hold tasks by task name (and, without
 * lanes, by group) until their scope may run; a blocked group leaves the rotation instead.
 */

import { needsLanes } from '../../flow/config.js'
import { PRIORITIES } from '../../task/model.js'
import type { FlowConfig, FlowGroupState, FlowState } from '../broker.js'
import { Deque } from './deque.js'
import type { TaskState } from './task-state.js'

export interface FlowHooks {
  /** A task leaves (`held` true) or rejoins the ready count while its scope cannot run. */
  hold(task: TaskState, held: boolean): void
  /** Ready work may be claimable again. */
  wake(): void
}

type Why = 'p' | 't' | 'cap' | 'rl'
type Window = [max: number, durationMs: number]
const BLOCKED: Record<Why, FlowGroupState['blocked']> = {
  p: 'paused',
  t: 'throttled',
  cap: 'capped',
  rl: 'rate-limited',
}

const groupOf = (task: TaskState): string => task.group ?? task.tenantId
const level = (task: TaskState): number => PRIORITIES.indexOf(task.priority)

export class FlowReady {
  private readonly plain = PRIORITIES.map(() => new Deque<TaskState>())
  private config: FlowConfig | undefined
  private lanesOn = false
  private limits: { q?: Window; n?: Window; g?: Window } = {}
  private queuePaused = false
  /** Scope ('n:'/'g:') -> 0 (paused) or when its throttle ends. */
  private readonly paused = new Map<string, number>()
  private readonly wakes = new Map<string, number>()
  private readonly held = new Map<string, TaskState[]>()
  private readonly windows = new Map<string, number[]>()
  private readonly running = new Map<string, number>()
  private readonly blocked = new Map<string, Why>()
  private readonly lanes = new Map<string, Deque<TaskState>[]>()
  private readonly rotation = PRIORITIES.map(() => new Map<string, number>())

  constructor(private readonly hooks: FlowHooks) {}

  configure(config: FlowConfig | undefined): void {
    const before = this.lanesOn
    this.config = config
    this.lanesOn = needsLanes(config)
    this.limits = {}
    for (const l of config?.limits ?? [])
      this.limits[({ queue: 'q', task: 'n', group: 'g' } as const)[l.per]] = [l.max, l.durationMs]
    if (!before || this.lanesOn) return
    // Lanes off: their tasks go back to the level lists, group by group, oldest first.
    for (const deques of this.lanes.values()) {
      deques.forEach((lane, p) => {
        for (let t = lane.popFront(); t !== undefined; t = lane.popFront()) this.plain[p]!.pushBack(t)
      })
    }
    this.lanes.clear()
    this.blocked.clear()
    for (const r of this.rotation) r.clear()
    this.hooks.wake()
  }

  pushTail(task: TaskState): void {
    if (this.lanesOn) this.toLane(task, false)
    else this.plain[level(task)]!.pushBack(task)
  }

  /** Puts tasks at the head of their levels (or lanes), keeping their order. */
  pushHead(tasks: readonly TaskState[]): void {
    for (let i = tasks.length - 1; i >= 0; i--) {
      const task = tasks[i]!
      if (this.lanesOn) this.toLane(task, true)
      else this.plain[level(task)]!.pushFront(task)
    }
  }

  private toLane(task: TaskState, front: boolean): void {
    const g = groupOf(task)
    const p = level(task)
    let deques = this.lanes.get(g)
    if (!deques) {
      deques = PRIORITIES.map(() => new Deque<TaskState>())
      this.lanes.set(g, deques)
    }
    if (front) deques[p]!.pushFront(task)
    else deques[p]!.pushBack(task)
    if (!this.blocked.has(g)) this.joinRotation(p, g)
  }

  private joinRotation(p: number, g: string): void {
    const r = this.rotation[p]!
    if (r.has(g)) return
    r.set(g, this.pick(p)?.pass ?? 0)
  }

  /** The group a level's rotation serves next: lowest virtual time, then name (as a Redis zset). */
  private pick(p: number): { group: string; pass: number } | undefined {
    let best: { group: string; pass: number } | undefined
    for (const [group, pass] of this.rotation[p]!) {
      if (!best || pass < best.pass || (pass === best.pass && group < best.group)) best = { group, pass }
    }
    return best
  }

  /** The first live task of a level outside the lanes (the one the next claim takes there). */
  first(priority: (typeof PRIORITIES)[number], isLive: (task: TaskState) => boolean): TaskState | undefined {
    const list = this.plain[PRIORITIES.indexOf(priority)]!
    for (let i = 0; i < list.length; i++) {
      const task = list.at(i)!
      if (isLive(task)) return task
    }
    return undefined
  }

  /** Whether a claim now could find work: not paused, and a level list or a rotation holds some. */
  mayClaim(now: number): boolean {
    if (this.queuePaused) return false
    if (this.limits.q && this.room('q', this.limits.q, now).room === 0) return false
    return this.plain.some((d) => d.length > 0) || this.rotation.some((r) => r.size > 0)
  }

  /**
   * Pops up to `max` tasks that may start, strict priority between levels; with lanes, one per
   * turn of the rotation within a level. `isLive` is the broker's own filter (tombstones, lock keys).
   */
  take(max: number, isLive: (task: TaskState) => boolean, now: number): TaskState[] {
    const taken: TaskState[] = []
    const active =
      this.config !== undefined || this.queuePaused || this.paused.size > 0 || this.wakes.size > 0
    if (active) this.maintain(now)
    if (this.queuePaused) return taken
    let need = max
    if (this.limits.q) need = Math.min(need, this.room('q', this.limits.q, now).room)
    const attempt = (task: TaskState): { started: boolean; blocked: boolean } => {
      if (active && task.status === 'queued' && !this.admit(task, now))
        return { started: false, blocked: false }
      if (!isLive(task)) return { started: false, blocked: false }
      taken.push(task)
      need -= 1
      return { started: true, blocked: active && this.started(task, now) }
    }
    PRIORITIES.forEach((_, p) => {
      const list = this.plain[p]!
      while (need > 0 && list.length > 0) attempt(list.popFront()!)
      if (!this.lanesOn) return
      const r = this.rotation[p]!
      while (need > 0) {
        const next = this.pick(p)
        if (!next) break
        const g = next.group
        const [why, until] = this.groupBlocked(g, now)
        if (why) {
          this.block(g, why, until)
          continue
        }
        const lane = this.lanes.get(g)![p]!
        const task = lane.popFront()
        const emptied = task === undefined || lane.length === 0
        if (emptied) r.delete(g)
        if (!task) continue
        const { started, blocked } = attempt(task)
        if (started && !emptied && !blocked) r.set(g, next.pass + 1 / (this.config?.weights[g] ?? 1))
      }
    })
    return taken
  }

  /** A task left processing: its group slot is free. */
  leave(task: TaskState): void {
    const g = task.slotGroup
    if (g === undefined) return
    task.slotGroup = undefined
    const n = (this.running.get(g) ?? 1) - 1
    if (n <= 0) this.running.delete(g)
    else this.running.set(g, n)
    if (this.blocked.get(g) === 'cap') this.unblock(`g:${g}`)
  }

  pause(scope: string): void {
    if (scope === 'q') this.queuePaused = true
    else this.paused.set(scope, 0)
  }

  resume(scope: string): void {
    if (scope === 'q') {
      this.queuePaused = false
      this.hooks.wake()
      return
    }
    this.paused.delete(scope)
    this.wakes.delete(scope)
    this.unblock(scope)
  }

  /** Stops a scope until `until` (a manual pause or a longer throttle stays). */
  throttle(scope: string, until: number): void {
    const current = this.paused.get(scope)
    if (current !== 0 && (current === undefined || current < until)) this.paused.set(scope, until)
    this.wakeAt(scope, until)
    if (scope.startsWith('g:') && this.lanesOn) this.block(scope.slice(2), 't', undefined)
  }

  /** The earliest time a waiting scope should be looked at again, or undefined. */
  nextWakeAt(now: number): number | undefined {
    let at: number | undefined
    for (const t of this.wakes.values()) if (at === undefined || t < at) at = t
    if (this.limits.q) {
      const { next } = this.room('q', this.limits.q, now)
      if (next !== undefined && (at === undefined || next < at)) at = next
    }
    return at
  }

  state(now: number, most: number): FlowState {
    const tasks: string[] = []
    const groups: string[] = []
    const waiting: FlowState['waiting'] = []
    const seen = new Set<string>()
    const wait = (scope: string, until: number) => {
      if (seen.has(scope) || until <= now) return
      seen.add(scope)
      const kind = scope === 'q' ? 'queue' : scope.startsWith('n:') ? 'task' : 'group'
      waiting.push({ kind, name: scope === 'q' ? '' : scope.slice(2), until })
    }
    for (const [scope, until] of this.paused) {
      if (until === 0) (scope.startsWith('n:') ? tasks : groups).push(scope.slice(2))
      else wait(scope, until)
    }
    for (const [scope, until] of this.wakes) if (!this.paused.has(scope)) wait(scope, until)
    if (this.limits.q) {
      const { next } = this.room('q', this.limits.q, now)
      if (next !== undefined) wait('q', next)
    }
    const out: FlowGroupState[] = []
    if (this.lanesOn) {
      const names = new Set([...this.lanes.keys(), ...this.running.keys()])
      for (const group of names) {
        if (out.length >= most) break
        const ready = (this.lanes.get(group) ?? []).reduce((n, d) => n + d.length, 0)
        const running = this.running.get(group) ?? 0
        if (ready === 0 && running === 0) {
          this.lanes.delete(group)
          continue
        }
        const state: FlowGroupState = { group, ready, running }
        const why = this.blocked.get(group)
        if (why) state.blocked = BLOCKED[why]
        out.push(state)
      }
    }
    return {
      lanes: this.lanesOn,
      paused: { queue: this.queuePaused, tasks, groups },
      waiting: waiting.sort((a, b) => a.until - b.until),
      groups: out.sort((a, b) => b.ready - a.ready || a.group.localeCompare(b.group)),
    }
  }

  // --- the twins of flow-core.lua's functions ---

  private wakeAt(scope: string, at: number): void {
    const current = this.wakes.get(scope)
    if (current === undefined || at < current) this.wakes.set(scope, at)
  }

  private scopeWait(scope: string, now: number): number | undefined {
    const v = this.paused.get(scope)
    if (v === undefined) return undefined
    if (v === 0 || v > now) return v
    this.paused.delete(scope)
    return undefined
  }

  private room(scope: string, [max, durationMs]: Window, now: number): { room: number; next?: number } {
    const starts = (this.windows.get(scope) ?? []).filter((t) => t > now - durationMs)
    this.windows.set(scope, starts)
    if (starts.length < max) return { room: max - starts.length }
    return { room: 0, next: Math.min(...starts) + durationMs }
  }

  private cap(g: string): number {
    return this.config?.groupCaps[g] ?? this.config?.groupConcurrency ?? 0
  }

  private block(g: string, why: Why, until: number | undefined): void {
    this.blocked.set(g, why)
    for (const r of this.rotation) r.delete(g)
    if (until !== undefined) this.wakeAt(`g:${g}`, until)
  }

  private groupBlocked(g: string, now: number): [Why | undefined, number | undefined] {
    const w = this.scopeWait(`g:${g}`, now)
    if (w === 0) return ['p', undefined]
    if (w !== undefined) return ['t', w]
    const cap = this.cap(g)
    if (cap > 0 && (this.running.get(g) ?? 0) >= cap) return ['cap', undefined]
    if (this.limits.g) {
      const { room, next } = this.room(`g:${g}`, this.limits.g, now)
      if (room === 0) return ['rl', next]
    }
    return [undefined, undefined]
  }

  private unblock(scope: string, max?: number): void {
    let woke = false
    if (scope.startsWith('g:')) {
      const g = scope.slice(2)
      this.blocked.delete(g)
      const deques = this.lanes.get(g)
      if (this.lanesOn && deques) {
        deques.forEach((d, p) => {
          if (d.length === 0) return
          this.joinRotation(p, g)
          woke = true
        })
      }
    }
    const held = this.held.get(scope) ?? []
    const back = held.splice(0, max ?? held.length)
    if (held.length === 0) this.held.delete(scope)
    const queued = back.filter((task) => task.status === 'queued')
    for (const task of queued) this.hooks.hold(task, false)
    this.pushHead(queued)
    if (woke || queued.length > 0) this.hooks.wake()
  }

  private maintain(now: number): void {
    const due = [...this.wakes].filter(([, at]) => at <= now).sort((a, b) => a[1] - b[1])
    for (const [scope] of due) {
      this.wakes.delete(scope)
      const w = this.scopeWait(scope, now)
      if (w === undefined) {
        const max = scope.startsWith('n:') ? this.limits.n?.[0] : undefined
        this.unblock(scope, max)
        if (max !== undefined && this.held.has(scope)) this.wakeAt(scope, now + this.limits.n![1])
      } else if (w > 0) this.wakeAt(scope, w)
    }
  }

  private admit(task: TaskState, now: number): boolean {
    const scopes = [`n:${task.name}`]
    if (!this.lanesOn) scopes.push(`g:${groupOf(task)}`)
    for (const [i, scope] of scopes.entries()) {
      let w = this.scopeWait(scope, now)
      if (w === undefined && i === 0 && this.limits.n) {
        const { room, next } = this.room(scope, this.limits.n, now)
        if (room === 0) w = next
      }
      if (w === undefined) continue
      this.hooks.hold(task, true)
      const held = this.held.get(scope) ?? []
      held.push(task)
      this.held.set(scope, held)
      if (w > 0) this.wakeAt(scope, w)
      return false
    }
    return true
  }

  private started(task: TaskState, now: number): boolean {
    const count = (scope: string) => {
      const starts = this.windows.get(scope) ?? []
      starts.push(now)
      this.windows.set(scope, starts)
    }
    if (this.limits.q) count('q')
    if (this.limits.n) count(`n:${task.name}`)
    if (!this.lanesOn) return false
    const g = groupOf(task)
    task.slotGroup = g
    const running = (this.running.get(g) ?? 0) + 1
    this.running.set(g, running)
    const cap = this.cap(g)
    if (cap > 0 && running >= cap) {
      this.block(g, 'cap', undefined)
      return true
    }
    if (this.limits.g) {
      count(`g:${g}`)
      const { room, next } = this.room(`g:${g}`, this.limits.g, now)
      if (room === 0) {
        this.block(g, 'rl', next)
        return true
      }
    }
    return false
  }
}
