/**
 * A Redis server of the test's own on a free loopback port, for tests that kill connections,
 * restart or flush the server. The shared Redis is never touched.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface PrivateRedis {
  url: string
  port: number
  stop(): Promise<void>
  /** Starts the server again on the same port (empty: it keeps nothing on disk). */
  restart(): Promise<void>
  /** Kills the server (connections are refused) until `up()`. */
  down(): Promise<void>
  /** Starts a server stopped by `down()` on the same port (empty). */
  up(): Promise<void>
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void
  /** Thaws a server frozen by `pause()`. */
  resume(): void
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

async function waitForPort(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port })
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'taskloom-redis-'))
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    )
    await waitForPort(port)
  }
  const stop = async () => {
    const c = child
    child = undefined
    if (!c || c.exitCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      c.kill('SIGKILL')
    })
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    restart: async () => {
      await stop()
      await start()
    },
    down: stop,
    up: start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    stop: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
