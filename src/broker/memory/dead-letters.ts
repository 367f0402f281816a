/**
 * The dead-letter queue: values ordered by time of death (ties in arrival order), read newest first
 * for inspection and taken oldest first for bulk retries. Deaths almost always arrive in time order,
 * so adding is an append; an out-of-order death is inserted where it belongs.
 */
interface Death<T> {
  at: number
  value: T
}

export class DeadLetters<T> {
  /** Oldest first. */
  private deaths: Death<T>[] = []

  get length(): number {
    return this.deaths.length
  }

  add(at: number, value: T): void {
    const deaths = this.deaths
    const last = deaths[deaths.length - 1]
    if (!last || last.at <= at) {
      deaths.push({ at, value })
      return
    }
    let lo = 0
    let hi = deaths.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (deaths[mid]!.at <= at) lo = mid + 1
      else hi = mid
    }
    deaths.splice(lo, 0, { at, value })
  }

  remove(values: ReadonlySet<T>): void {
    if (values.size > 0) this.deaths = this.deaths.filter((death) => !values.has(death.value))
  }

  /** Removes and returns up to `max` of the oldest. */
  takeOldest(max: number): T[] {
    return this.deaths.splice(0, Math.max(0, Math.floor(max))).map((death) => death.value)
  }

  /** Most recent first, skipping `offset`. */
  newestFirst(limit: number, offset: number): T[] {
    const end = this.deaths.length - Math.max(0, Math.floor(offset))
    const start = Math.max(0, end - Math.max(0, Math.floor(limit)))
    if (end <= start) return []
    return this.deaths
      .slice(start, end)
      .reverse()
      .map((death) => death.value)
  }
}
