/** Small SVG charts: stacked bars of tasks finished per minute, and the failure rate per minute. */
import { h, svg } from './dom.js'

export interface Bucket {
  at: number
  completed: number
  failed: number
}

const W = 240
const H = 56

function figure(label: string, caption: string, ...marks: SVGElement[]): HTMLElement {
  return h(
    'figure',
    { class: 'chart' },
    svg(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'none' },
      ...marks,
    ),
    h('figcaption', {}, caption),
  )
}

/** Completed (and failed, stacked on top) per bucket. */
export function throughputChart(buckets: Bucket[]): HTMLElement {
  const max = Math.max(1, ...buckets.map((b) => b.completed + b.failed))
  const bw = W / Math.max(1, buckets.length)
  const total = buckets.reduce((a, b) => a + b.completed + b.failed, 0)
  const bars = buckets.flatMap((b, i) => {
    const hc = (b.completed / max) * H
    const hf = (b.failed / max) * H
    return [
      svg('rect', { x: i * bw, y: H - hc, width: Math.max(1, bw - 1), height: hc, class: 'bar-ok' }),
      svg('rect', { x: i * bw, y: H - hc - hf, width: Math.max(1, bw - 1), height: hf, class: 'bar-fail' }),
    ]
  })
  return figure(
    `${total.toLocaleString()} tasks finished in the last hour, at most ${max.toLocaleString()} a minute`,
    `Throughput · ${total.toLocaleString()} / h · peak ${max.toLocaleString()} / min`,
    ...bars,
  )
}

/** Failed share of finished tasks per bucket, 0-100 %. */
export function failureChart(buckets: Bucket[]): HTMLElement {
  const bw = W / Math.max(1, buckets.length)
  const finished = buckets.reduce((a, b) => a + b.completed + b.failed, 0)
  const failed = buckets.reduce((a, b) => a + b.failed, 0)
  const rate = finished > 0 ? (failed / finished) * 100 : 0
  const points = buckets.map((b, i) => {
    const n = b.completed + b.failed
    const r = n > 0 ? b.failed / n : 0
    return `${(i * bw + bw / 2).toFixed(1)},${(H - r * (H - 2) - 1).toFixed(1)}`
  })
  return figure(
    `failure rate over the last hour: ${rate.toFixed(1)} percent`,
    `Failure rate · ${rate.toFixed(1)} % of ${finished.toLocaleString()}`,
    svg('polyline', { points: points.join(' '), class: 'line-fail', fill: 'none' }),
  )
}

/** A horizontal meter (utilisation, quota). */
export function meter(fraction: number, label: string): HTMLElement {
  const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100)
  const bar = h('span', { class: `meter-fill${pct >= 90 ? ' meter-hot' : ''}` })
  bar.style.width = `${pct}%`
  return h(
    'span',
    {
      class: 'meter',
      role: 'meter',
      'aria-valuenow': pct,
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-label': label,
    },
    bar,
  )
}
