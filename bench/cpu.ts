/**
 * CPU spent by each process on the submit path during a figure: this process (the library's client
 * side), the Redis server (`INFO cpu`) and, when PostgreSQL runs on this host, the PostgreSQL server
 * (its postmaster and every backend, from /proc). Divided by the tasks submitted, it shows what a
 * submit costs the machine, not only how long it takes.
 *
 * The servers' figures count whatever else they did meanwhile: on a shared box, another client's
 * work shows up here too.
 */
import { readdir, readFile } from 'node:fs/promises'
import type { Redis } from 'ioredis'
import pg from 'pg'

export interface CpuSeconds {
  node: number
  redis: number
  /** Undefined when PostgreSQL is not measured (not used, or not on this host). */
  postgres?: number
}

/** One line of /proc/<pid>/stat: the parent and the CPU ticks of the process and its reaped children. */
export interface ProcStat {
  ppid: number
  /** utime + stime */
  ticks: number
  /** cutime + cstime: children that exited and were waited for. */
  childTicks: number
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself hold spaces
 * or parentheses, so the fields are counted from the last `)`.
 */
export function parseStat(text: string): ProcStat {
  const end = text.lastIndexOf(')')
  if (end < 0) throw new Error(`not a /proc stat line: ${text.slice(0, 80)}`)
  // After ") ": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
  const f = text
    .slice(end + 2)
    .trim()
    .split(' ')
  const at = (field: number) => {
    const value = Number(f[field - 3])
    if (!Number.isFinite(value)) throw new Error(`/proc stat field ${field} is not a number: ${f[field - 3]}`)
    return value
  }
  return { ppid: at(4), ticks: at(14) + at(15), childTicks: at(16) + at(17) }
}

/** Linux's USER_HZ; /proc reports CPU time in these ticks. 100 on every common kernel. */
const TICKS_PER_SECOND = 100

/**
 * CPU seconds used so far by `root` and all its descendants, live or exited (an exited child's time
 * moves into its parent's cutime/cstime once reaped, so the total only grows). Answers undefined if
 * `root` is not a process on this host. A child reaped while one snapshot is being read may be
 * counted twice or not at all in it; with pooled connections, few backends end during a figure.
 */
export async function processTreeSeconds(root: number, procDir = '/proc'): Promise<number | undefined> {
  const stats = new Map<number, ProcStat>()
  let entries: string[]
  try {
    entries = await readdir(procDir)
  } catch {
    return undefined
  }
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => {
        try {
          stats.set(Number(e), parseStat(await readFile(`${procDir}/${e}/stat`, 'utf8')))
        } catch {
          // The process ended between the listing and the read; its time is in its parent's.
        }
      }),
  )
  const top = stats.get(root)
  if (!top) return undefined
  const children = new Map<number, number[]>()
  for (const [pid, s] of stats) {
    const list = children.get(s.ppid)
    if (list) list.push(pid)
    else children.set(s.ppid, [pid])
  }
  let ticks = 0
  const pending = [root]
  while (pending.length > 0) {
    const pid = pending.pop()!
    const s = stats.get(pid)!
    ticks += s.ticks + s.childTicks
    pending.push(...(children.get(pid) ?? []))
  }
  return ticks / TICKS_PER_SECOND
}

/** Redis's own CPU seconds (main thread and background threads), from `INFO cpu`. */
export async function redisSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string) => {
    const m = new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)
    if (!m) throw new Error(`INFO cpu has no ${name}`)
    return Number(m[1])
  }
  return field('used_cpu_sys') + field('used_cpu_user')
}

export interface CpuSources {
  redis: Redis
  /** The PostgreSQL postmaster's pid, when the server runs on this host. */
  postmaster?: number
}

/** Snapshot now; the returned function answers the CPU seconds each process used since. */
export async function startCpuMeter(sources: CpuSources): Promise<() => Promise<CpuSeconds>> {
  const read = async (): Promise<CpuSeconds> => {
    const node = process.cpuUsage()
    const [redis, postgres] = await Promise.all([
      redisSeconds(sources.redis),
      sources.postmaster === undefined ? undefined : processTreeSeconds(sources.postmaster),
    ])
    return { node: (node.user + node.system) / 1e6, redis, postgres }
  }
  const before = await read()
  return async () => {
    const after = await read()
    return {
      node: after.node - before.node,
      redis: after.redis - before.redis,
      postgres:
        after.postgres === undefined || before.postgres === undefined
          ? undefined
          : after.postgres - before.postgres,
    }
  }
}

/**
 * The postmaster's pid when the server at `url` runs on this host, else undefined: the server is
 * reached over a Unix socket or loopback, and the pid its backend reports is a local `postgres`
 * process whose parent is that postmaster.
 */
export async function localPostmaster(url: string, procDir = '/proc'): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const r = await client.query<{ pid: number; addr: string | null }>(
      'select pg_backend_pid() as pid, host(inet_server_addr()) as addr',
    )
    const { pid, addr } = r.rows[0]!
    if (addr !== null && addr !== '127.0.0.1' && addr !== '::1') return undefined
    // Read while this connection is open: its backend ends with it.
    const comm = (await readFile(`${procDir}/${pid}/comm`, 'utf8').catch(() => '')).trim()
    if (comm !== 'postgres') return undefined
    return parseStat(await readFile(`${procDir}/${pid}/stat`, 'utf8')).ppid
  } finally {
    await client.end()
  }
}
