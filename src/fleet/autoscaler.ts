/**
 * Autoscaling of one worker's pool: `createWorker({ concurrency: { min: 10, max: 100 } })`.
 * Every `intervalMs` it reads the queue depth (ready tasks). Depth above `scaleUpDepth` for
 * `samples` reads in a row grows the pool (×2, at most `max`); depth below `scaleDownDepth` for
 * `samples` reads shrinks it (÷2, at least `min`). The gap between the two thresholds and the run of
 * samples are the hysteresis: one burst or one quiet read changes nothing, and after a change the
 * count starts again. Defaults: scale up above the current concurrency, down below a quarter of it
 * (at least 1, so an empty queue shrinks a pool of 2 or 3 to `min: 1`: a quarter of 3 rounds to 0,
 * and no depth is below 0).
 */
import { TaskloomError } from '../errors.js'

export interface AutoscaleOptions {
  min: number
  max: number
  /** Start here. Default `min`. */
  initial?: number
  /** Grow when more than this many tasks wait. Default: the current concurrency. */
  scaleUpDepth?: number
  /** Shrink when fewer than this many wait. Default: a quarter of the current concurrency, at least 1. */
  scaleDownDepth?: number
  /** Between depth reads. Default 5,000 ms. */
  intervalMs?: number
  /** Consecutive reads past a threshold before acting. Default 3. */
  samples?: number
}

export interface ScaleDecision {
  from: number
  to: number
  queueDepth: number
  reason: 'queue-deep' | 'queue-shallow'
}

export function checkAutoscale(
  o: AutoscaleOptions,
): Required<Omit<AutoscaleOptions, 'scaleUpDepth' | 'scaleDownDepth'>> &
  Pick<AutoscaleOptions, 'scaleUpDepth' | 'scaleDownDepth'> {
  const bad: string[] = []
  const int = (v: unknown, min: number, max: number) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max
  const initial = o.initial ?? o.min
  if (!int(o.min, 1, 100_000)) bad.push('concurrency.min must be an integer from 1 to 100000')
  if (!int(o.max, 1, 100_000) || !(o.max >= o.min))
    bad.push('concurrency.max must be an integer from min to 100000')
  if (!int(initial, o.min, o.max)) bad.push('concurrency.initial must be an integer from min to max')
  if (o.scaleUpDepth !== undefined && !int(o.scaleUpDepth, 0, 1e9))
    bad.push('concurrency.scaleUpDepth must be a non-negative integer')
  if (o.scaleDownDepth !== undefined && !int(o.scaleDownDepth, 0, 1e9))
    bad.push('concurrency.scaleDownDepth must be a non-negative integer')
  if (o.scaleUpDepth !== undefined && o.scaleDownDepth !== undefined && !(o.scaleDownDepth < o.scaleUpDepth))
    bad.push('concurrency.scaleDownDepth must be below scaleUpDepth (the gap is the hysteresis)')
  const intervalMs = o.intervalMs ?? 5000
  const samples = o.samples ?? 3
  if (!int(intervalMs, 10, 3_600_000))
    bad.push('concurrency.intervalMs must be an integer from 10 to 3600000')
  if (!int(samples, 1, 1000)) bad.push('concurrency.samples must be an integer from 1 to 1000')
  if (bad.length > 0) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid worker options: ${bad.join('; ')}`, {
      issues: bad.map((message) => ({ path: 'concurrency', message })),
    })
  }
  return { ...o, initial, intervalMs, samples }
}

export class Autoscaler {
  private deep = 0
  private shallow = 0
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> = Promise.resolve()

  constructor(
    private readonly o: ReturnType<typeof checkAutoscale>,
    private readonly current: () => number,
    private readonly depth: () => Promise<number>,
    private readonly apply: (decision: ScaleDecision) => void,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running = this.running.then(async () => void (await this.sample())).catch(this.onError)
    }, this.o.intervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.running
  }

  /** One depth read and, past a threshold for `samples` reads, one decision. */
  async sample(): Promise<ScaleDecision | null> {
    const depth = await this.depth()
    const c = this.current()
    const up = this.o.scaleUpDepth ?? c
    const down = this.o.scaleDownDepth ?? Math.max(1, Math.floor(c / 4))
    if (depth > up) {
      this.deep += 1
      this.shallow = 0
    } else if (depth < down) {
      this.shallow += 1
      this.deep = 0
    } else {
      this.deep = 0
      this.shallow = 0
    }
    let decision: ScaleDecision | null = null
    if (this.deep >= this.o.samples && c < this.o.max) {
      decision = { from: c, to: Math.min(this.o.max, c * 2), queueDepth: depth, reason: 'queue-deep' }
    } else if (this.shallow >= this.o.samples && c > this.o.min) {
      decision = {
        from: c,
        to: Math.max(this.o.min, Math.floor(c / 2)),
        queueDepth: depth,
        reason: 'queue-shallow',
      }
    }
    if (decision) {
      this.deep = 0
      this.shallow = 0
      this.apply(decision)
    }
    return decision
  }
}
