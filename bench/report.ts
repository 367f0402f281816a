/** The markdown report: run metadata and one table, taskloom vs BullMQ. */
import type { BenchConfig } from './config.js'
import { fmtInt, fmtMs, fmtRatio, median } from './stats.js'

export interface Meta {
  date: string
  command: string
  cpu: string
  cores: number
  memGb: number
  node: string
  redis: string
  bullmq: string
  taskloom: string
  loadStart: number[]
  loadEnd: number[]
  seconds: number
}

/** One row's samples (one per round) for both libraries. */
export interface Row {
  figure: string
  /** 'higher' for throughput, 'lower' for latency and memory. */
  better: 'higher' | 'lower'
  unit: 'int' | 'ms' | 'ratio'
  /** A context figure (not a comparison): no ratio column. */
  noRatio?: boolean
  tl: number[]
  bull: number[]
  /** Renders the target cell from taskloom's and BullMQ's medians, or '' for none. */
  target?: (tl: number, bull: number) => string
}

export function renderReport(meta: Meta, config: BenchConfig, rows: Row[]): string {
  const c = config
  const lines = [
    `# taskloom vs BullMQ (${meta.date})`,
    '',
    `- command: \`${meta.command}\`${c.quick ? ' (quick sizes: a smoke run, not a measurement)' : ''}`,
    `- machine: ${meta.cpu}, ${meta.cores} cores, ${meta.memGb} GB RAM; load average ${loads(meta.loadStart)} at start, ${loads(meta.loadEnd)} at end`,
    `- node ${meta.node}, Redis ${meta.redis} (same box), bullmq ${meta.bullmq}, taskloom ${meta.taskloom} (Redis-only mode)`,
    `- sizes: submit ${fmtInt(c.submitN)} with ${c.submitInFlight} in flight; drain ${fmtInt(c.drainN)} pre-loaded; worker concurrency ${c.concurrency}; ` +
      `latency ${fmtInt(c.latencyRate)}/s for ${c.latencySeconds} s; flat slice ${fmtInt(c.flatSlice)} behind ${fmtInt(c.flatSmall)} vs ${fmtInt(c.flatLarge)} queued; ` +
      `warm-up ${fmtInt(c.warmupN)}; rounds ${c.rounds}${c.rounds > 1 ? ' (cells: median, then min-max)' : ''}`,
    `- wall time ${meta.seconds.toFixed(0)} s`,
    '',
    '| figure | taskloom | BullMQ | taskloom / BullMQ | target |',
    '|---|---:|---:|---:|---|',
  ]
  for (const row of rows) {
    const tl = median(row.tl)
    const bull = median(row.bull)
    const arrow = row.better === 'higher' ? '↑' : '↓'
    lines.push(
      `| ${row.figure} ${arrow} | ${cell(row.tl, row.unit)} | ${cell(row.bull, row.unit)} | ${row.noRatio ? '-' : fmtRatio(tl / bull)} | ${row.target?.(tl, bull) ?? ''} |`,
    )
  }
  lines.push('', '↑ higher is better, ↓ lower is better.', '')
  return lines.join('\n')
}

function cell(values: number[], unit: Row['unit']): string {
  const f = unit === 'int' ? fmtInt : unit === 'ms' ? fmtMs : fmtRatio
  if (values.length === 0) return 'n/a'
  if (values.length === 1) return f(values[0]!)
  return `${f(median(values))} (${f(Math.min(...values))}-${f(Math.max(...values))})`
}

function loads(l: number[]): string {
  return l.map((x) => x.toFixed(2)).join(' / ')
}

export const atLeastBull = (tl: number, bull: number) =>
  tl >= bull ? 'at least BullMQ: met' : 'at least BullMQ: **missed**'
export const under = (ms: number) => (tl: number) =>
  tl < ms ? `under ${ms} ms: met` : `under ${ms} ms: **missed**`
/** Claim cost is "flat" when the large-backlog slice runs within 20% of the small-backlog one. */
export const flat = (tl: number) => (tl >= 0.8 ? 'flat (>= 0.80x): met' : 'flat (>= 0.80x): **missed**')
