/**
 * A Redis Cluster of the test's own: six `redis-server --cluster-enabled yes` nodes on free loopback
 * ports (three masters, one replica each, made by `redis-cli --cluster create`), nothing on disk,
 * and a short `cluster-node-timeout` so a killed master's replica takes over within a few seconds.
 * The shared Redis is never touched. Start one per test file (`useCluster()`, use-cluster.ts) or
 * share the run's (test/helpers/cluster-setup.ts); it takes a few seconds. The benchmark uses it too.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, waitForPing } from './private-redis.js'

const run = promisify(execFile)

export interface ClusterNode {
  port: number
  url: string
}

export interface ClusterMember {
  id: string
  port: number
  master: boolean
  /** A replica's master's id. */
  replicaOf: string | undefined
  failed: boolean
  /** Slot ranges this master serves, as [first, last]. */
  slots: [number, number][]
}

export interface PrivateCluster {
  /** Every node's redis:// URL: seed URLs for `{ cluster: seeds }`. */
  seeds: string[]
  nodes: ClusterNode[]
  /** Runs one redis-cli command against a node (the first live one by default); answers its output. */
  cli(args: readonly string[], port?: number): Promise<string>
  /** The cluster as a live node sees it (CLUSTER NODES). */
  members(): Promise<ClusterMember[]>
  /** The port of the master that serves `key`'s slot now. */
  masterOf(key: string): Promise<number>
  /**
   * SIGKILLs the master serving `key`'s slot and waits until its replica was promoted and the
   * cluster is whole again; answers the killed and the promoted node's ports.
   */
  killMasterOf(key: string, timeoutMs?: number): Promise<{ killed: number; promoted: number }>
  stop(): Promise<void>
}

export interface PrivateClusterOptions {
  /** `cluster-node-timeout`: how long a silent master goes before it is failed over. Default 1,500 ms. */
  nodeTimeoutMs?: number
}

export async function startPrivateCluster(options: PrivateClusterOptions = {}): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'taskloom-cluster-'))
  const children = new Map<number, ChildProcess>()
  const nodes: ClusterNode[] = []
  const stop = async () => {
    await Promise.all([...children.values()].map(kill))
    children.clear()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < 6; i++) {
      const [port, busPort] = [await freePort(), await freePort()]
      const nodeDir = join(dir, String(port))
      mkdirSync(nodeDir)
      const child = spawn(
        'redis-server',
        [
          ...['--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1'],
          ...['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'],
          ...['--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1500)],
          ...['--save', '', '--appendonly', 'no', '--dir', nodeDir],
        ],
        { stdio: 'ignore' },
      )
      children.set(port, child)
      nodes.push({ port, url: `redis://127.0.0.1:${port}` })
    }
    await Promise.all(nodes.map((n) => waitForPing(n.port)))
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ])
  } catch (err) {
    await stop()
    throw err
  }

  const alive = () => nodes.filter((n) => running(children.get(n.port)))
  const cli = async (args: readonly string[], port = alive()[0]?.port): Promise<string> => {
    if (port === undefined) throw new Error('no cluster node is alive')
    const { stdout } = await run('redis-cli', ['-p', String(port), ...args])
    return stdout
  }
  const members = async (): Promise<ClusterMember[]> =>
    (await cli(['CLUSTER', 'NODES']))
      .trim()
      .split('\n')
      .map((line) => {
        const [id, address, flags, masterId, , , , , ...slots] = line.split(' ')
        const port = Number(/:(\d+)@/.exec(address ?? '')?.[1])
        return {
          id: id!,
          port,
          master: flags!.includes('master'),
          replicaOf: masterId === '-' ? undefined : masterId,
          // 'fail?' (suspected by this node) or 'fail' (agreed by the majority).
          failed: flags!.includes('fail'),
          slots: slots
            .filter((s) => /^\d+(-\d+)?$/.test(s))
            .map((s) => {
              const [a, b] = s.split('-').map(Number)
              return [a!, b ?? a!] as [number, number]
            }),
        }
      })
  const masterOf = async (key: string): Promise<number> => {
    const slot = Number((await cli(['CLUSTER', 'KEYSLOT', key])).trim())
    const owner = (await members()).find(
      (m) => m.master && !m.failed && m.slots.some(([a, b]) => slot >= a && slot <= b),
    )
    if (!owner) throw new Error(`no live master serves slot ${slot}`)
    return owner.port
  }
  const whole = async () => {
    for (const n of alive()) {
      if (!(await cli(['CLUSTER', 'INFO'], n.port)).includes('cluster_state:ok')) return false
    }
    return true
  }
  await waitFor(whole, 20_000, 'the cluster to report cluster_state:ok')
  // Replicas must have synced before a master may be failed over to them.
  await waitFor(
    async () => {
      for (const n of alive()) {
        const info = await cli(['INFO', 'replication'], n.port)
        if (info.includes('role:slave') && !info.includes('master_link_status:up')) return false
      }
      return true
    },
    20_000,
    'the replicas to sync',
  )

  return {
    seeds: nodes.map((n) => n.url),
    nodes,
    cli,
    members,
    masterOf,
    killMasterOf: async (key, timeoutMs = 30_000) => {
      const killed = await masterOf(key)
      const child = children.get(killed)
      if (child) await kill(child)
      let promoted = killed
      await waitFor(
        async () => {
          try {
            promoted = await masterOf(key)
          } catch {
            return false
          }
          return promoted !== killed && (await whole())
        },
        timeoutMs,
        `a replica to take over from the master on port ${killed}`,
      )
      return { killed, promoted }
    },
    stop,
  }
}

const running = (child: ChildProcess | undefined): boolean =>
  child !== undefined && child.exitCode === null && child.signalCode === null

/** SIGKILLs a server started here and waits for it to exit. */
export function kill(child: ChildProcess): Promise<void> {
  if (!running(child)) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
