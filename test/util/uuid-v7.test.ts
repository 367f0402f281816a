/**
 * Task ids are UUID version 7: valid UUIDs whose first 48 bits are the creation time, so ids made
 * later sort after ids made earlier (the property the store's indexes rely on), and never repeat.
 */
import { describe, expect, it } from 'vitest'
import { uuidV7 } from '../../src/util/uuid-v7.js'

const SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('uuidV7', () => {
  it('is a version 7, RFC 9562 variant UUID carrying its millisecond', () => {
    const at = Date.UTC(2026, 10, 29, 9, 0, 0, 123)
    const id = uuidV7(at)
    expect(id).toMatch(SHAPE)
    expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at)
  })

  it('sorts by time across milliseconds, as text and as a uuid', () => {
    const ids = [1, 2, 3, 1000, 2 ** 40].map((ms) => uuidV7(1_700_000_000_000 + ms))
    expect([...ids].sort()).toEqual(ids)
    expect(uuidV7(0).startsWith('00000000-0000-7')).toBe(true)
    expect(uuidV7(2 ** 48 - 1).startsWith('ffffffff-ffff-7')).toBe(true)
  })

  it('never repeats, even within one millisecond, and spreads its random bits', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 50_000; i++) seen.add(uuidV7(1_700_000_000_000))
    expect(seen.size).toBe(50_000)
    // Every hex digit of the random tail turns up (a stuck byte would leave some out).
    const tails = new Set([...seen].flatMap((id) => [...id.slice(24)]))
    expect(tails.size).toBe(16)
  })
})
