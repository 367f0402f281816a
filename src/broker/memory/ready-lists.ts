/**
 * The ready lists of one queue, one deque per priority (Redis: `ready:<priority>` lists). New work
 * joins the tail of its level; released and expired leases go back to the head. Cancelled tasks stay
 * where they are as tombstones and are dropped when a claim reaches them.
 */
import type { Priority } from '../../task/model.js'
import { PRIORITIES } from '../../task/model.js'
import { Deque } from './deque.js'

export class ReadyLists<T extends { readonly priority: Priority }> {
  private readonly lists: Record<Priority, Deque<T>> = {
    critical: new Deque(),
    high: new Deque(),
    normal: new Deque(),
    low: new Deque(),
  }

  pushTail(item: T): void {
    this.lists[item.priority].pushBack(item)
  }

  /** Puts items at the head of their levels, keeping their order: the first given comes out first. */
  pushHead(items: readonly T[]): void {
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i]!
      this.lists[item.priority].pushFront(item)
    }
  }

  /** The first live item of a level (the next one a claim takes there), skipping tombstones. */
  first(priority: Priority, isLive: (item: T) => boolean): T | undefined {
    const list = this.lists[priority]
    for (let i = 0; i < list.length; i++) {
      const item = list.at(i)!
      if (isLive(item)) return item
    }
    return undefined
  }

  /**
   * Pops up to `max` live items in strict priority order, first in first out within a level.
   * Items that are not live (tombstones) are dropped and do not count against `max`.
   */
  take(max: number, isLive: (item: T) => boolean): T[] {
    const taken: T[] = []
    for (const priority of PRIORITIES) {
      const list = this.lists[priority]
      while (taken.length < max) {
        const item = list.popFront()
        if (item === undefined) break
        if (isLive(item)) taken.push(item)
      }
      if (taken.length >= max) break
    }
    return taken
  }
}
