/**
 * The benchmark's CPU meter (bench/cpu.ts): the figures it reports are only as good as the way it
 * reads /proc and INFO, so those are tested on a fake /proc tree and on real processes and servers.
 */
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  localPostmaster,
  parseStat,
  processTreeSeconds,
  redisSeconds,
  startCpuMeter,
} from '../../bench/cpu.js'
import { DATABASE_URL, hasPostgres, hasRedis, REDIS_URL } from '../helpers/services.js'

/** A stat line as the kernel writes it; only the fields the meter reads vary. */
function statLine(
  pid: number,
  comm: string,
  ppid: number,
  utime: number,
  stime: number,
  cutime = 0,
  cstime = 0,
) {
  return `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194560 100 0 0 0 ${utime} ${stime} ${cutime} ${cstime} 20 0 1 0 500 1000 10\n`
}

describe('parseStat', () => {
  it('reads the parent and the CPU ticks, whatever the command name holds', () => {
    const s = parseStat(statLine(42, 'post gres: (x) idle', 7, 150, 50, 30, 20))
    expect(s).toEqual({ ppid: 7, ticks: 200, childTicks: 50 })
  })

  it('refuses a line that is not a stat line', () => {
    expect(() => parseStat('nonsense')).toThrow(/not a \/proc stat line/)
    expect(() => parseStat('1 (x) S notanumber')).toThrow(/field 4 is not a number/)
  })
})

describe('processTreeSeconds on a fake /proc', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'taskloom-proc-'))
    const procs: [number, string][] = [
      [10, statLine(10, 'postgres', 1, 100, 0, 400, 100)], // postmaster: 5 s of reaped backends
      [11, statLine(11, 'postgres', 10, 50, 50)], // a live backend
      [12, statLine(12, 'postgres', 11, 25, 25)], // its child
      [13, statLine(13, 'redis-server', 1, 9000, 9000)], // unrelated
    ]
    for (const [pid, line] of procs) {
      await mkdir(path.join(dir, String(pid)))
      await writeFile(path.join(dir, String(pid), 'stat'), line)
    }
    await mkdir(path.join(dir, 'self')) // not a pid: ignored
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('sums the root, its live descendants and its reaped children, and nothing else', async () => {
    expect(await processTreeSeconds(10, dir)).toBe((100 + 500 + 100 + 50) / 100)
    expect(await processTreeSeconds(11, dir)).toBe(1.5)
  })

  it('answers undefined for a process that is not there', async () => {
    expect(await processTreeSeconds(99, dir)).toBeUndefined()
    expect(await processTreeSeconds(10, path.join(dir, 'missing'))).toBeUndefined()
  })
})

const linux = process.platform === 'linux'
if (!linux) console.warn('\n!!! SKIPPING the real /proc checks of bench/cpu.ts: this is not Linux\n')

describe.skipIf(!linux)('processTreeSeconds on this machine', () => {
  it('counts a child while it runs and after it has exited', async () => {
    // The child burns 300 ms of its own CPU and says when it is halfway, so the figures do not
    // depend on how busy the box is; this process's own CPU is taken out of the tree's.
    const burn = (ms: number) =>
      `while ((process.cpuUsage().user + process.cpuUsage().system) / 1000 < ${ms});`
    const script = `${burn(150)} process.stdout.write('half\\n'); ${burn(300)}`
    const own = process.cpuUsage()
    const before = (await processTreeSeconds(process.pid))!
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
    // This process's own CPU, read next to each tree figure: other threads of the test runner may
    // burn CPU in this process meanwhile, so one reading taken at the end would take out too much.
    const ownSince = () => {
      const u = process.cpuUsage(own)
      return (u.user + u.system) / 1e6
    }
    const during = (await processTreeSeconds(process.pid))!
    const ownDuring = ownSince()
    await exited
    const after = (await processTreeSeconds(process.pid))!
    const ownAfter = ownSince()
    // /proc counts in 10 ms ticks: a margin of a few ticks.
    expect(during - before - ownDuring).toBeGreaterThan(0.1)
    expect(after - before - ownAfter).toBeGreaterThan(0.25)
    expect(after).toBeGreaterThanOrEqual(during)
  })
})

describe.skipIf(!(await hasRedis()))('redisSeconds', () => {
  it("grows by the server's own work", async () => {
    const redis = new Redis(REDIS_URL)
    try {
      const before = await redisSeconds(redis)
      // About 100 ms of Lua on the server; nothing else is needed to see it.
      await redis.eval('local n = 0 for i = 1, 20000000 do n = n + i end return 0', 0)
      expect((await redisSeconds(redis)) - before).toBeGreaterThan(0.02)
    } finally {
      redis.disconnect()
    }
  })
})

const loopback = ['127.0.0.1', 'localhost', '[::1]', ''].includes(new URL(DATABASE_URL).hostname)
const postgresHere = linux && loopback && (await hasPostgres())
if (linux && !loopback)
  console.warn(`\n!!! SKIPPING localPostmaster's check: ${DATABASE_URL} is not on this host\n`)

describe.skipIf(!postgresHere)(
  'localPostmaster and startCpuMeter against the PostgreSQL on this host',
  () => {
    it("finds the postmaster, and the meter sees a query's CPU in it", async () => {
      const postmaster = await localPostmaster(DATABASE_URL)
      expect(postmaster).toBeTypeOf('number')
      expect((await readFile(`/proc/${postmaster}/comm`, 'utf8')).trim()).toBe('postgres')

      const redis = new Redis(REDIS_URL)
      const client = new pg.Client({ connectionString: DATABASE_URL })
      await client.connect()
      try {
        const since = await startCpuMeter({ redis, postmaster })
        await client.query('select count(*) from generate_series(1, 5000000)')
        const used = await since()
        expect(used.postgres).toBeGreaterThan(0.05)
        expect(used.node).toBeGreaterThanOrEqual(0)
        expect(used.redis).toBeGreaterThanOrEqual(0)
      } finally {
        await client.end()
        redis.disconnect()
      }
    })

    it('answers undefined when the backend pid is not a postgres process on this host', async () => {
      // The same server, with /proc pointing at nothing: the pid cannot be confirmed as postgres.
      expect(await localPostmaster(DATABASE_URL, '/nonexistent-proc')).toBeUndefined()
    })
  },
)
