/**
 * A private Redis for the soak, with an append-only file (`appendfsync everysec`), so it can be
 * restarted three ways: empty (its files deleted), from its own files (a crash), or from a copy of
 * its files taken earlier (a rollback: a restore from an older AOF, or a failover to a replica that
 * missed writes). Loopback only, on a free port; the shared Redis is never touched.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface AofRedis {
  url: string
  /** SIGKILL, delete the data, start again: Redis lost everything. */
  restartEmpty(): Promise<void>
  /** Copies the data files as they are now (a point to roll back to). */
  snapshot(): void
  /** SIGKILL, put the last snapshot's files back, start again: Redis came back with older data. */
  rollback(): Promise<void>
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

async function waitForPing(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port })
      let answer = ''
      s.once('connect', () => s.write('PING\r\n'))
      s.on('data', (d) => {
        answer += d.toString()
        s.destroy()
        // While it loads its files Redis answers -LOADING.
        resolve(answer.startsWith('+PONG'))
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not come up`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export async function startAofRedis(): Promise<AofRedis> {
  const port = await freePort()
  const root = mkdtempSync(join(tmpdir(), 'taskloom-soak-redis-'))
  const data = join(root, 'data')
  const snap = join(root, 'snapshot')
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'everysec',
        '--aof-load-truncated',
        'yes',
        '--dir',
        data,
      ],
      { stdio: 'ignore' },
    )
    await waitForPing(port)
  }
  const kill = async () => {
    const c = child
    child = undefined
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      c.kill('SIGKILL')
    })
  }
  mkdirSync(data, { recursive: true })
  await start()
  const exitHook = () => child?.kill('SIGKILL')
  process.once('exit', exitHook)
  return {
    url: `redis://127.0.0.1:${port}`,
    restartEmpty: async () => {
      await kill()
      rmSync(data, { recursive: true, force: true })
      mkdirSync(data, { recursive: true })
      await start()
    },
    snapshot: () => {
      rmSync(snap, { recursive: true, force: true })
      cpSync(data, snap, { recursive: true })
    },
    rollback: async () => {
      await kill()
      rmSync(data, { recursive: true, force: true })
      cpSync(snap, data, { recursive: true })
      await start()
    },
    stop: async () => {
      await kill()
      process.off('exit', exitHook)
      rmSync(root, { recursive: true, force: true })
    },
  }
}
