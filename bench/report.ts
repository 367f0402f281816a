/** The markdown report: run metadata and one table, taskloom (Redis-only and durable) vs BullMQ. */
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
  postgres: string
  bullmq: string
  taskloom: string
  loadStart: number[]
  loadEnd: number[]
  seconds: number
}

/** A column: one library (or one mode of taskloom). */
export interface Column {
  id: string
  label: string
}

/** One row's samples (one per round) per column id. */
export interface Row {
  figure: string
  /** 'higher' for throughput, 'lower' for latency and memory. */
  better: 'higher' | 'lower'
  unit: 'int' | 'ms' | 'us' | 'ratio'
  /** A context figure (not a comparison): no ratio column. */
  noRatio?: boolean
  samples: Record<string, number[]>
  /** Renders the target verdict for one taskloom column's median (and BullMQ's), or '' for none. */
  target?: (value: number, bull: number) => string
}

const BASE = 'bull'

export function renderReport(meta: Meta, config: BenchConfig, columns: Column[], rows: Row[]): string {
  const c = config
  const durable = columns.some((col) => col.id === 'tlpg')
  const mode = durable ? 'Redis-only and durable mode' : 'Redis-only mode'
  const base = columns.find((col) => col.id === BASE)
  const compared = base ? columns.filter((col) => col.id !== BASE) : []
  const lines = [
    `# taskloom vs BullMQ (${meta.date})`,
    '',
    `- command: \`${meta.command}\`${c.quick ? ' (quick sizes: a smoke run, not a measurement)' : ''}`,
    `- machine: ${meta.cpu}, ${meta.cores} cores, ${meta.memGb} GB RAM; load average ${loads(meta.loadStart)} at start, ${loads(meta.loadEnd)} at end`,
    `- node ${meta.node}, Redis ${meta.redis} (same box)${durable ? `, PostgreSQL ${meta.postgres} (same box)` : ''}, bullmq ${meta.bullmq}, taskloom ${meta.taskloom} (${mode})`,
    `- sizes: submit ${fmtInt(c.submitN)} with ${c.submitInFlight} in flight; drain ${fmtInt(c.drainN)} pre-loaded; worker concurrency ${c.concurrency}; ` +
      `latency ${fmtInt(c.latencyRate)}/s for ${c.latencySeconds} s; flat slice ${fmtInt(c.flatSlice)} behind ${fmtInt(c.flatSmall)} vs ${fmtInt(c.flatLarge)} queued; ` +
      `warm-up ${fmtInt(c.warmupN)}; rounds ${c.rounds}${c.rounds > 1 ? ' (cells: median, then min-max)' : ''}`,
    `- wall time ${meta.seconds.toFixed(0)} s`,
    '',
    `| figure | ${columns.map((col) => col.label).join(' | ')} | ${compared.map((col) => `${col.label} / BullMQ`).join(' | ')}${compared.length ? ' | ' : ''}target |`,
    `|---|${columns.map(() => '---:|').join('')}${compared.map(() => '---:|').join('')}---|`,
  ]
  for (const row of rows) {
    const arrow = row.better === 'higher' ? '↑' : '↓'
    const cells = columns.map((col) => cell(row.samples[col.id] ?? [], row.unit))
    const bull = median(row.samples[BASE] ?? [])
    const ratios = compared.map((col) => {
      const v = row.samples[col.id] ?? []
      return row.noRatio || v.length === 0 || !(bull > 0) ? '-' : fmtRatio(median(v) / bull)
    })
    const judge = row.target
    const target = judge
      ? columns
          .filter((col) => col.id !== BASE && (row.samples[col.id]?.length ?? 0) > 0)
          .map((col) => `${col.label}: ${judge(median(row.samples[col.id]!), bull)}`)
          .join('; ')
      : ''
    lines.push(`| ${row.figure} ${arrow} | ${[...cells, ...ratios, target].join(' | ')} |`)
  }
  lines.push('', '↑ higher is better, ↓ lower is better. n/a: not run for that column.', '')
  return lines.join('\n')
}

function cell(values: number[], unit: Row['unit']): string {
  const f = unit === 'int' ? fmtInt : unit === 'ratio' ? fmtRatio : fmtMs
  if (values.length === 0) return 'n/a'
  if (values.length === 1) return f(values[0]!)
  return `${f(median(values))} (${f(Math.min(...values))}-${f(Math.max(...values))})`
}

function loads(l: number[]): string {
  return l.map((x) => x.toFixed(2)).join(' / ')
}

/** Against BullMQ's median; with no BullMQ column there is nothing to compare to. */
export const atLeastBull = (v: number, bull: number) =>
  !(bull > 0) ? 'no BullMQ column' : v >= bull ? 'at least BullMQ: met' : 'at least BullMQ: **missed**'
export const under = (ms: number) => (v: number) =>
  v < ms ? `under ${ms} ms: met` : `under ${ms} ms: **missed**`
/** Claim cost is "flat" when the large-backlog slice runs within 20% of the small-backlog one. */
export const flat = (v: number) => (v >= 0.8 ? 'flat (>= 0.80x): met' : 'flat (>= 0.80x): **missed**')
