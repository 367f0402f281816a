/**
 * A PostgreSQL server of the test's own, on a free loopback port, for tests that stop, restart or
 * freeze the database. The shared PostgreSQL is never touched.
 *
 * `initdb` makes a throwaway cluster in a temp dir (trust auth, database `postgres`, fsync off), and
 * `pg_ctl` runs it. PostgreSQL refuses to run as root, so when the tests run as root every command
 * runs as the `postgres` OS user (`runuser -u postgres --`) and the temp dir is handed to that user.
 */
import { execFile, execFileSync } from 'node:child_process'
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string
  port: number
  /** Stops the server at once and removes its data. */
  stop(): Promise<void>
  /** Stops the server (immediate mode: like a crash; what was committed survives) and starts it again. */
  restart(options?: { downMs?: number }): Promise<void>
  /** Stops the server, keeping the data, until `start()`. Open connections are cut. */
  down(mode?: 'immediate' | 'fast'): Promise<void>
  /** Starts a server stopped by `down()` on the same port, with the same data. */
  start(): Promise<void>
  /** Freezes every server process (SIGSTOP): connections stay open but nothing answers. */
  pause(): void
  /** Thaws a server frozen by `pause()`. */
  resume(): void
}

/** The directory of `initdb`, `pg_ctl` and `postgres`, or null when PostgreSQL is not installed. */
export function postgresBinDir(): string | null {
  const has = (dir: string) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))
  if (process.env.PG_BINDIR && has(process.env.PG_BINDIR)) return process.env.PG_BINDIR
  try {
    const dir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
    if (dir && has(dir)) return dir
  } catch {
    // no pg_config on PATH: look where Debian and Ubuntu put the server
  }
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
    for (const v of versions) {
      const dir = `/usr/lib/postgresql/${v}/bin`
      if (has(dir)) return dir
    }
  } catch {
    // not a Debian layout
  }
  return null
}

/** True when a private PostgreSQL can be started here (binaries found; a `postgres` user when root). */
export function canStartPrivatePostgres(): boolean {
  if (postgresBinDir() === null) return false
  if (process.getuid?.() !== 0) return true
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' })
    execFileSync('runuser', ['--help'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
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

/** Servers still running, stopped synchronously if the test process exits without `stop()`. */
const live = new Set<() => void>()
let exitHook = false

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir()
  if (bin === null) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) were not found')
  const asRoot = process.getuid?.() === 0
  const dir = mkdtempSync(join(tmpdir(), 'taskloom-pg-'))
  const data = join(dir, 'data')
  const logFile = join(dir, 'server.log')
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(dir, uid, gid)
  }
  /** argv of one PostgreSQL command, as the postgres user when we are root. */
  const argv = (tool: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args]
  const pg = async (tool: string, args: string[], timeoutMs = 60_000) => {
    const [file, rest] = argv(tool, args)
    try {
      await run(file, rest, { cwd: dir, timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } })
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string }
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : ''
      throw new Error(
        `${tool} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}${log}`,
      )
    }
  }

  const port = await freePort()
  try {
    await pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'])
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  // Settings go in the config file, so every start (and pg_ctl restart) uses them. fsync off is safe
  // here: the tests crash the server, never the machine, so written WAL survives in the page cache.
  // synchronous_commit stays on: with it off an immediate stop loses acknowledged commits.
  const settings = [
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dir}'`,
    'max_connections = 200',
    'fsync = off',
    'full_page_writes = off',
    'logging_collector = off',
  ].join('\n')
  appendFileSync(join(data, 'postgresql.conf'), `\n${settings}\n`)

  let running = false
  const startServer = async () => {
    await pg('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60'])
    running = true
  }
  const stopServer = async (mode: 'immediate' | 'fast') => {
    if (!running) return
    resumeServer()
    await pg('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '60'])
    running = false
  }
  const postmasterPid = (): number | null => {
    try {
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
      return Number.isInteger(pid) && pid > 0 ? pid : null
    } catch {
      return null
    }
  }
  // Every backend and auxiliary process calls setsid() (each is a session and group of its own), so
  // a group signal would reach the postmaster alone: signal it and each of its children by pid.
  const signalGroup = (signal: NodeJS.Signals) => {
    const pid = postmasterPid()
    if (pid === null) return
    const children = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((entry) => {
        try {
          // Fields after the command name, which sits in parentheses and may hold spaces.
          const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid
        } catch {
          return false // exited meanwhile
        }
      })
      .map(Number)
    // Children first when stopping (nothing answers from then on), the postmaster first when thawing.
    const order = signal === 'SIGCONT' ? [pid, ...children] : [...children, pid]
    for (const target of order) {
      try {
        process.kill(target, signal)
      } catch {
        // exited meanwhile
      }
    }
  }
  let paused = false
  const resumeServer = () => {
    if (!paused) return
    paused = false
    signalGroup('SIGCONT')
  }
  const emergencyStop = () => {
    try {
      resumeServer()
      const [f, a] = argv('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '10'])
      if (running) execFileSync(f, a, { cwd: dir, stdio: 'ignore' })
    } catch {
      // best effort
    }
    rmSync(dir, { recursive: true, force: true })
  }
  if (!exitHook) {
    exitHook = true
    process.once('exit', () => {
      for (const stop of live) stop()
    })
  }

  try {
    await startServer()
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  live.add(emergencyStop)

  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: async () => {
      live.delete(emergencyStop)
      try {
        await stopServer('immediate')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
    restart: async (options = {}) => {
      await stopServer('immediate')
      if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs))
      await startServer()
    },
    down: (mode = 'immediate') => stopServer(mode),
    start: async () => {
      if (!running) await startServer()
    },
    pause: () => {
      if (paused || !running) return
      paused = true
      signalGroup('SIGSTOP')
    },
    resume: resumeServer,
  }
}
