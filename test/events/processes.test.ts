/**
 * Queue events across processes (issue 17): every subscribed process gets every event, a process
 * resumes after the last id it saw, and waitFor resolves for a task another process ran.
 */
import type { ChildProcess } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { backends, until } from '../helpers/backends.js'
import { REDIS_URL } from '../helpers/services.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'

const redis = backends.find((b) => b.label === 'redis')!
const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })

interface Child {
  proc: ChildProcess
  lines: string[]
}

const children: Child[] = []

function start(queue: string, ...args: string[]): Child {
  const proc = spawnFixture('test/fixtures/events-process.ts', [REDIS_URL, queue, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const child: Child = { proc, lines: [] }
  let rest = ''
  proc.stdout!.on('data', (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split('\n')
    rest = parts.pop()!
    child.lines.push(...parts)
  })
  children.push(child)
  return child
}

async function ready(child: Child): Promise<string> {
  const line = await until(() => child.lines.find((l) => l.startsWith('ready')), 30_000, 'the child to start')
  return line.slice('ready '.length)
}

async function stop(child: Child): Promise<void> {
  if (child.proc.exitCode !== null) return
  const exited = new Promise((resolve) => child.proc.once('exit', resolve))
  child.proc.kill('SIGTERM')
  await exited
}

const events = (child: Child) =>
  child.lines
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type: string; taskId: string; eventId: string })

afterEach(async () => {
  await Promise.all(children.splice(0).map(stop))
})

describe.skipIf(!redis.available)('queue events across processes', () => {
  it('delivers every event to each subscribed process, and resumes a process after its last id', async () => {
    const queue = redis.queue()
    const [a, b] = [start(queue.name, 'listen'), start(queue.name, 'listen')]
    const worker = start(queue.name, 'work')
    await Promise.all([ready(a), ready(b), ready(worker)])
    const first = await queue.submitMany([1, 2, 3].map((n) => ({ task: job, input: { n } })))
    for (const { id } of first) await queue.waitFor(id, { timeoutMs: 20_000 })
    const expected = first.flatMap(({ id }) => [`queued ${id}`, `progress ${id}`, `completed ${id}`]).sort()
    for (const child of [a, b]) {
      await until(() => events(child).length >= 9, 10_000, 'every event in each listener')
      expect(
        events(child)
          .map((e) => `${e.type} ${e.taskId}`)
          .sort(),
      ).toEqual(expected)
    }
    // Both saw the same stream: the same ids for the same events.
    expect(events(a).map((e) => e.eventId)).toEqual(events(b).map((e) => e.eventId))

    // A stops; while it is away, more happens; it comes back from the last id it printed.
    const lastId = events(a).at(-1)!.eventId
    await stop(a)
    const second = await queue.submit(job, { n: 4 })
    await queue.waitFor(second.id, { timeoutMs: 20_000 })
    const again = start(queue.name, 'listen', lastId)
    await ready(again)
    await until(() => events(again).length >= 3, 10_000, 'the resumed listener to catch up')
    expect(events(again).map((e) => `${e.type} ${e.taskId}`)).toEqual([
      `queued ${second.id}`,
      `progress ${second.id}`,
      `completed ${second.id}`,
    ])
  }, 90_000)

  it('resolves waitFor for a task another process runs, without polling', async () => {
    const queue = redis.queue()
    const { id } = await queue.submit(job, { n: 7 })
    const waiting = queue.waitFor<{ pid: number }>(id, { timeoutMs: 30_000 })
    const worker = start(queue.name, 'work')
    await ready(worker)
    const done = await waiting
    expect(done.status).toBe('completed')
    expect(done.result?.pid).toBe(worker.proc.pid)
    expect(done.progress).toBe(7)
    expect((await queue.logs(id)).lines.map((l) => l.line)).toEqual([`handled 7 in ${worker.proc.pid}`])
  }, 60_000)
})
