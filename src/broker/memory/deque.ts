/**
 * A double-ended queue on a ring buffer: O(1) push at either end and pop from the front, no
 * `Array.shift`. Capacity is a power of two; it doubles when full and halves when three quarters
 * empty, so a drained million-task queue gives its memory back.
 */
const MIN_CAPACITY = 16

export class Deque<T> {
  private buffer: (T | undefined)[] = new Array(MIN_CAPACITY)
  private head = 0
  private size = 0

  get length(): number {
    return this.size
  }

  pushBack(value: T): void {
    if (this.size === this.buffer.length) this.resize(this.buffer.length * 2)
    this.buffer[(this.head + this.size) & (this.buffer.length - 1)] = value
    this.size += 1
  }

  pushFront(value: T): void {
    if (this.size === this.buffer.length) this.resize(this.buffer.length * 2)
    this.head = (this.head - 1) & (this.buffer.length - 1)
    this.buffer[this.head] = value
    this.size += 1
  }

  /** The item `index` places from the front (0: the next `popFront`), without removing it. */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.size) return undefined
    return this.buffer[(this.head + index) & (this.buffer.length - 1)]
  }

  popFront(): T | undefined {
    if (this.size === 0) return undefined
    const value = this.buffer[this.head]
    this.buffer[this.head] = undefined
    this.head = (this.head + 1) & (this.buffer.length - 1)
    this.size -= 1
    if (this.buffer.length > MIN_CAPACITY && this.size < this.buffer.length / 4) {
      this.resize(this.buffer.length / 2)
    }
    return value
  }

  private resize(capacity: number): void {
    const next: (T | undefined)[] = new Array(capacity)
    for (let i = 0; i < this.size; i++) next[i] = this.buffer[(this.head + i) & (this.buffer.length - 1)]
    this.buffer = next
    this.head = 0
  }
}
