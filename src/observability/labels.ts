/**
 * Bounded label values: a metric label that takes user-controlled values (tenants, task names, error
 * types, routes) keeps at most `max` distinct values; later ones share `_other`. Prometheus keeps one
 * series per label combination, so an unbounded label is an outage waiting to happen.
 */

export const OTHER = '_other'
export const ALL = '_all'

export class BoundedLabel {
  private readonly seen = new Set<string>()

  /** `max` 0 turns the label off: every value becomes `_all`. */
  constructor(private readonly max: number) {}

  value(raw: string | undefined | null): string {
    if (this.max === 0) return ALL
    const v = raw === undefined || raw === null || raw === '' ? 'unknown' : raw
    if (this.seen.has(v)) return v
    if (this.seen.size >= this.max) return OTHER
    this.seen.add(v)
    return v
  }
}
