/**
 * A Sentinel-managed Redis of the test's own: one primary, one replica and three sentinels
 * (`redis-server --sentinel`, quorum 2) on free loopback ports, nothing on disk, and a short
 * `down-after-milliseconds` so a killed primary is failed over within a few seconds. The shared
 * Redis is never touched.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { kill, waitFor } from './private-cluster.js'
import { freePort, waitForPing } from './private-redis.js'

const run = promisify(execFile)

export const SENTINEL_MASTER = 'taskloom'

export interface PrivateSentinel {
  /** The sentinels, as `createQueue({ redis: { sentinels, name } })` takes them. */
  sentinels: { host: string; port: number }[]
  name: string
  /** The port of the server the sentinels name as primary now. */
  primary(): Promise<number>
  /** SIGKILLs the primary and waits until the sentinels promoted the replica; answers its port. */
  killPrimary(timeoutMs?: number): Promise<number>
  stop(): Promise<void>
}

export async function startPrivateSentinel(): Promise<PrivateSentinel> {
  const dir = mkdtempSync(join(tmpdir(), 'taskloom-sentinel-'))
  const children = new Map<number, ChildProcess>()
  const server = (port: number, args: string[]) => {
    const data = join(dir, String(port))
    mkdirSync(data)
    const child = spawn(
      'redis-server',
      [
        ...args,
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        data,
      ],
      { stdio: 'ignore' },
    )
    children.set(port, child)
  }
  const stop = async () => {
    await Promise.all([...children.values()].map(kill))
    children.clear()
    rmSync(dir, { recursive: true, force: true })
  }
  const cli = async (port: number, ...args: string[]) =>
    (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim()
  const sentinelPorts: number[] = []
  try {
    const [primaryPort, replicaPort] = [await freePort(), await freePort()]
    server(primaryPort, [])
    server(replicaPort, ['--replicaof', '127.0.0.1', String(primaryPort)])
    await Promise.all([waitForPing(primaryPort), waitForPing(replicaPort)])
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      const conf = join(dir, `sentinel-${port}.conf`)
      writeFileSync(
        conf,
        [
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
          '',
        ].join('\n'),
      )
      server(port, [conf, '--sentinel'])
      sentinelPorts.push(port)
    }
    await Promise.all(sentinelPorts.map((p) => waitForPing(p)))
    // Before anything may fail over: the replica is in sync and every sentinel knows it and its peers.
    await waitFor(
      async () => {
        if (!(await cli(replicaPort, 'INFO', 'replication')).includes('master_link_status:up')) return false
        for (const p of sentinelPorts) {
          const info = await cli(p, 'SENTINEL', 'MASTER', SENTINEL_MASTER)
          const field = (name: string) => new RegExp(`(^|\\n)${name}\\n(\\d+)`).exec(info)?.[2]
          if (field('num-slaves') !== '1' || field('num-other-sentinels') !== '2') return false
        }
        return true
      },
      30_000,
      'the sentinels to see the replica and each other',
    )
  } catch (err) {
    await stop()
    throw err
  }
  const primary = async () => {
    const [, port] = (
      await cli(sentinelPorts[0]!, 'SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER)
    ).split('\n')
    return Number(port)
  }
  return {
    sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
    name: SENTINEL_MASTER,
    primary,
    killPrimary: async (timeoutMs = 30_000) => {
      const old = await primary()
      await kill(children.get(old)!)
      let now = old
      await waitFor(
        async () => {
          now = await primary()
          return now !== old && (await cli(now, 'INFO', 'replication')).includes('role:master')
        },
        timeoutMs,
        `the sentinels to promote the replica of ${old}`,
      )
      return now
    },
    stop,
  }
}
