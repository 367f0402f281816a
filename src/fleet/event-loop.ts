/**
 * Blocked event loop detection: a timer that should fire every `tickMs` measures how late it fires
 * (timer drift); a lateness above `thresholdMs` means synchronous work blocked the loop that long.
 * `monitorEventLoopDelay` adds the delay distribution (p99) between two reads.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks'

export class EventLoopWatch {
  private timer: NodeJS.Timeout | undefined
  private histogram: IntervalHistogram | undefined
  private last = 0
  /** Longest block seen in the current and the previous window. */
  private windowMax = 0
  private previousMax = 0

  constructor(
    private readonly tickMs: number,
    private readonly thresholdMs: number,
    private readonly onBlocked: (blockedMs: number) => void,
  ) {}

  start(): void {
    this.histogram = monitorEventLoopDelay({ resolution: 20 })
    this.histogram.enable()
    this.last = performance.now()
    this.timer = setInterval(() => this.tick(), this.tickMs)
    this.timer.unref()
  }

  private tick(): void {
    const now = performance.now()
    const late = Math.max(0, Math.round(now - this.last - this.tickMs))
    this.last = now
    if (late > this.windowMax) this.windowMax = late
    if (late >= this.thresholdMs) this.onBlocked(late)
  }

  /** Longest block (ms) seen lately: in this window or the one before. */
  get blockedMs(): number {
    return Math.max(this.windowMax, this.previousMax)
  }

  /** p99 of the event loop delay since the last `roll` (ms). */
  get delayP99Ms(): number {
    const h = this.histogram
    return h && h.count > 0 ? Math.round(h.percentile(99) / 1e6) : 0
  }

  /** Starts a new window (every heartbeat). */
  roll(): void {
    this.previousMax = this.windowMax
    this.windowMax = 0
    this.histogram?.reset()
  }

  stop(): void {
    clearInterval(this.timer)
    this.histogram?.disable()
  }
}
