/**
 * The in-process broker's task dependencies (the twin of lua/deps.lua): for each waiting task the
 * dependencies it still waits for, for each task its dependents with the edge's policy, and the
 * flows recorded by `enqueueFlow` with their keys. Pure bookkeeping: the broker moves the tasks.
 */
import type { DependentRef, FailurePolicy, FlowRecord } from '../../task/dependency-model.js'

export interface WaitingDependent {
  id: string
  onFailure: FailurePolicy
}

export class DependencyGraph {
  private readonly waits = new Map<string, Set<string>>()
  private readonly dependents = new Map<string, Map<string, FailurePolicy>>()
  private readonly flows = new Map<string, FlowRecord>()
  private readonly flowKeys = new Map<string, { flowId: string; expiresAt: number }>()

  constructor(private readonly queueName: string) {}

  /** `id` waits for `dependency` until it finishes. */
  wait(id: string, dependency: string, onFailure: FailurePolicy): void {
    const waits = this.waits.get(id) ?? new Set()
    waits.add(dependency)
    this.waits.set(id, waits)
    const dependents = this.dependents.get(dependency) ?? new Map<string, FailurePolicy>()
    dependents.set(id, onFailure)
    this.dependents.set(dependency, dependents)
  }

  isWaiting(id: string): boolean {
    return this.waits.has(id)
  }

  /** `id` waits no longer (released, ended or cancelled). */
  leave(id: string): void {
    this.waits.delete(id)
  }

  /**
   * `dependency` finished: every dependent still waiting drops it. Answers those dependents with
   * their edge's policy, and whether each now waits for nothing.
   */
  finished(dependency: string): (WaitingDependent & { free: boolean })[] {
    const out: (WaitingDependent & { free: boolean })[] = []
    for (const [id, onFailure] of this.dependents.get(dependency) ?? []) {
      const waits = this.waits.get(id)
      if (!waits) continue
      waits.delete(dependency)
      out.push({ id, onFailure, free: waits.size === 0 })
    }
    return out
  }

  /** The record of `id` is purged: so is what it lists. */
  forget(id: string): void {
    this.dependents.delete(id)
    this.waits.delete(id)
  }

  dependentsOf(id: string): DependentRef[] {
    return [...(this.dependents.get(id)?.keys() ?? [])].map((d) => ({ id: d, queue: this.queueName }))
  }

  waitingFor(id: string): DependentRef[] {
    return [...(this.waits.get(id) ?? [])].map((d) => ({ id: d, queue: this.queueName }))
  }

  addFlow(flow: FlowRecord, key: string | undefined, expiresAt: number): void {
    this.flows.set(flow.id, flow)
    if (key !== undefined) this.flowKeys.set(`${flow.tenantId}\u0000${key}`, { flowId: flow.id, expiresAt })
  }

  getFlow(id: string): FlowRecord | null {
    return this.flows.get(id) ?? null
  }

  /** The flow a live key made, or undefined. */
  flowOfKey(tenantId: string, key: string, now: number): FlowRecord | undefined {
    const held = this.flowKeys.get(`${tenantId}\u0000${key}`)
    return held && held.expiresAt > now ? this.flows.get(held.flowId) : undefined
  }
}
