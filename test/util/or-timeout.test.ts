/** `orTimeout`: the work's outcome when it is first, `TIMED_OUT` when the deadline is. */
import { describe, expect, it } from 'vitest'
import { orTimeout, TIMED_OUT } from '../../src/util/or-timeout.js'

const resolveIn = <T>(ms: number, value: T) =>
  new Promise<T>((resolve) => setTimeout(() => resolve(value), ms))

describe('orTimeout', () => {
  it('answers the work when it settles first, and its rejection', async () => {
    expect(await orTimeout(resolveIn(5, 'done'), 1_000)).toBe('done')
    await expect(orTimeout(Promise.reject(new Error('no')), 1_000)).rejects.toThrow('no')
  })

  it('answers TIMED_OUT when the deadline comes first', async () => {
    const started = Date.now()
    expect(await orTimeout(resolveIn(5_000, 'late'), 20)).toBe(TIMED_OUT)
    expect(Date.now() - started).toBeLessThan(1_000)
  })
})
