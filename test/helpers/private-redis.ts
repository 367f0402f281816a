/**
 * A Redis server of the test's own on a free loopback port, for tests that kill connections,
 * restart or flush the server. The shared Redis is never touched.
 *
 * With `persistent`, it keeps an append-only file (`appendfsync always`, so what a command wrote
 * is on disk when it answers), survives `restart()`, and can be rolled back: `snapshot()` copies its
 * data directory aside, `restartFrom(snapshot)` kills the server and starts it again on that older
 * copy, as after a power loss with `everysec` or a restore from an older AOF/RDB file.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface PrivateRedis {
  url: string
  port: number
  stop(): Promise<void>
  /** Kills the server (SIGKILL) and starts it again on the same port: empty unless `persistent`. */
  restart(): Promise<void>
  /** Kills the server (connections are refused) until `up()`. */
  down(): Promise<void>
  /** Starts a server stopped by `down()` on the same port (empty). */
  up(): Promise<void>
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void
  /** Thaws a server frozen by `pause()`. */
  resume(): void
  /** Kills the server and starts it again empty, whether persistent or not. */
  restartEmpty(): Promise<void>
  /** Copies the data directory aside (persistent servers); answers the copy's path. */
  snapshot(): Promise<string>
  /** Kills the server and starts it again on a copy `snapshot()` made: its data goes back to then. */
  restartFrom(snapshot: string): Promise<void>
}

export interface PrivateRedisOptions {
  /** Keep an append-only file in the data directory. Default false: nothing on disk. */
  persistent?: boolean
  /**
   * With `persistent`: 'always' (default; what a command wrote is on disk when it answers) or
   * 'everysec' (as most production servers run: a crash or power loss can drop the last second).
   */
  appendfsync?: 'always' | 'everysec'
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

/** Waits until the server answers PING with PONG (while it loads its files it answers -LOADING). */
export async function waitForPing(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port })
      let answer = ''
      s.once('connect', () => s.write('PING\r\n'))
      s.on('data', (d) => {
        answer += d.toString()
        s.destroy()
        resolve(answer.startsWith('+PONG'))
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'taskloom-redis-'))
  const snapshots: string[] = []
  const persistence = options.persistent
    ? ['--appendonly', 'yes', '--appendfsync', options.appendfsync ?? 'always', '--aof-load-truncated', 'yes']
    : ['--appendonly', 'no']
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir],
      { stdio: 'ignore' },
    )
    await waitForPing(port)
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
  /** Empties the data directory (the server must be stopped). */
  const wipe = () => {
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir)
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
    restartEmpty: async () => {
      await stop()
      wipe()
      await start()
    },
    snapshot: async () => {
      const copy = mkdtempSync(join(tmpdir(), 'taskloom-redis-snapshot-'))
      cpSync(dir, copy, { recursive: true })
      snapshots.push(copy)
      return copy
    },
    restartFrom: async (snapshot) => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
      cpSync(snapshot, dir, { recursive: true })
      await start()
    },
    stop: async () => {
      await stop()
      for (const d of [dir, ...snapshots]) rmSync(d, { recursive: true, force: true })
    },
  }
}
