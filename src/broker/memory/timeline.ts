/**
 * Values ordered by a time (delayed tasks by due time, leases by deadline, records by expiry):
 * a binary min-heap with lazy deletion. `remove` only marks an entry; dead entries are dropped when
 * they reach the top, and the heap is rebuilt once more than half of it is dead. Equal times come
 * out in insertion order.
 */
export interface TimelineEntry<T> {
  readonly at: number
  readonly seq: number
  readonly value: T
  /** False once popped or removed. */
  live: boolean
}

const COMPACT_AFTER = 1024

export class Timeline<T> {
  private heap: TimelineEntry<T>[] = []
  private seq = 0
  private dead = 0

  /** Live entries. */
  get size(): number {
    return this.heap.length - this.dead
  }

  add(at: number, value: T): TimelineEntry<T> {
    const entry: TimelineEntry<T> = { at, seq: this.seq++, value, live: true }
    this.heap.push(entry)
    this.up(this.heap.length - 1)
    return entry
  }

  remove(entry: TimelineEntry<T> | undefined): void {
    if (!entry?.live) return
    entry.live = false
    this.dead += 1
    if (this.dead > COMPACT_AFTER && this.dead * 2 > this.heap.length) this.compact()
  }

  /** The earliest live entry. */
  peek(): TimelineEntry<T> | undefined {
    let top = this.heap[0]
    while (top && !top.live) {
      this.dead -= 1
      this.popTop()
      top = this.heap[0]
    }
    return top
  }

  /** Removes and returns the earliest live entry if it is due (`at <= now`). */
  popDue(now: number): TimelineEntry<T> | undefined {
    const top = this.peek()
    if (!top || top.at > now) return undefined
    this.popTop()
    top.live = false
    return top
  }

  /** Removes and returns every due value, earliest first. */
  popAllDue(now: number): T[] {
    const values: T[] = []
    for (let entry = this.popDue(now); entry; entry = this.popDue(now)) values.push(entry.value)
    return values
  }

  private popTop(): void {
    const last = this.heap.pop()
    if (last && this.heap.length > 0) {
      this.heap[0] = last
      this.down(0)
    }
  }

  private compact(): void {
    this.heap = this.heap.filter((entry) => entry.live)
    this.dead = 0
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i)
  }

  private up(index: number): void {
    const heap = this.heap
    const entry = heap[index]!
    while (index > 0) {
      const parent = (index - 1) >> 1
      const above = heap[parent]!
      if (!before(entry, above)) break
      heap[index] = above
      index = parent
    }
    heap[index] = entry
  }

  private down(index: number): void {
    const heap = this.heap
    const entry = heap[index]!
    for (;;) {
      const left = 2 * index + 1
      if (left >= heap.length) break
      const right = left + 1
      let child = left
      if (right < heap.length && before(heap[right]!, heap[left]!)) child = right
      const below = heap[child]!
      if (!before(below, entry)) break
      heap[index] = below
      index = child
    }
    heap[index] = entry
  }
}

function before<T>(a: TimelineEntry<T>, b: TimelineEntry<T>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}
