/**
 * A flow near the default `maxFlowNodes` (20,000) goes to Redis in one script call: its arguments are
 * passed as one array, not spread into a call (which overflowed the stack past ~10,000 tasks).
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { backends } from '../helpers/backends.js'

const leaf = defineTask({ name: 'leaf', input: z.object({ i: z.number() }) })
const redis = backends.find((b) => b.label === 'redis')!

describe.skipIf(!redis.available)('a large flow on Redis', () => {
  it('stores a parent with 15,000 children, the parent waiting for all of them', async () => {
    const queue = redis.queue()
    const children = Array.from({ length: 15_000 }, (_, i) => ({ task: leaf, input: { i } }))
    const { rootId, ids } = await queue.flow({ task: leaf, input: { i: -1 }, children })
    expect(Object.keys(ids)).toHaveLength(15_001)
    const root = await queue.get(rootId!)
    expect(root?.status).toBe('pending')
    expect(root?.waitingFor).toHaveLength(15_000)
    expect((await queue.get(ids['root.14999']!))?.status).toBe('queued')
  }, 60_000)
})
