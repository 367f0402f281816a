/** Flow control's shapes as flow.lua and flow-core.lua read and answer them. */
import { needsLanes } from '../../flow/config.js'
import type { FlowConfig, FlowGroupState, FlowState } from '../broker.js'

/** The config as Lua reads it: lim.q / lim.n / lim.g are [max, durationMs]. */
export function encodeFlowConfig(config: FlowConfig): string {
  const lim: Record<string, [number, number]> = {}
  for (const l of config.limits) lim[{ queue: 'q', task: 'n', group: 'g' }[l.per]] = [l.max, l.durationMs]
  return JSON.stringify({
    lanes: needsLanes(config),
    w: config.weights,
    gc: config.groupConcurrency,
    caps: config.groupCaps,
    lim,
  })
}

const BLOCKED: Record<string, FlowGroupState['blocked']> = {
  p: 'paused',
  t: 'throttled',
  cap: 'capped',
  rl: 'rate-limited',
}

interface RawState {
  lanes: boolean
  queuePaused: boolean
  paused: string[] | Record<string, never>
  waits: [string, number][] | Record<string, never>
  groups: [string, number, number, string][] | Record<string, never>
}

/** flow.lua's 'state' answer (cjson encodes an empty array as {}). */
export function decodeFlowState(json: string): FlowState {
  const raw = JSON.parse(json) as RawState
  const list = <T>(v: T[] | Record<string, never>): T[] => (Array.isArray(v) ? v : [])
  const paused = list(raw.paused)
  const seen = new Set<string>()
  const waiting: FlowState['waiting'] = []
  for (const [scope, until] of list(raw.waits)) {
    if (seen.has(scope)) continue
    seen.add(scope)
    const kind = scope === 'q' ? 'queue' : scope.startsWith('n:') ? 'task' : 'group'
    waiting.push({ kind, name: scope === 'q' ? '' : scope.slice(2), until })
  }
  const groups = list(raw.groups).map(([group, ready, running, why]) => {
    const state: FlowGroupState = { group, ready, running }
    if (why) state.blocked = BLOCKED[why]
    return state
  })
  return {
    lanes: raw.lanes,
    paused: {
      queue: raw.queuePaused,
      tasks: paused.filter((s) => s.startsWith('n:')).map((s) => s.slice(2)),
      groups: paused.filter((s) => s.startsWith('g:')).map((s) => s.slice(2)),
    },
    waiting: waiting.sort((a, b) => a.until - b.until),
    groups: groups.sort((a, b) => b.ready - a.ready || a.group.localeCompare(b.group)),
  }
}
