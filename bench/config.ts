/**
 * Sizes of every figure, from CLI flags (`--drain=50000`, `--quick`) or env vars (`BENCH_DRAIN=50000`,
 * `BENCH_QUICK=1`); a flag wins over its env var. `--help` lists them.
 */
export const SCENARIOS = ['submit', 'drain', 'latency', 'flat'] as const
export type Scenario = (typeof SCENARIOS)[number]
/** The columns: taskloom Redis-only, taskloom durable (PostgreSQL + Redis), BullMQ. */
export const LIBS = ['tl', 'tlpg', 'bull'] as const
export type Lib = (typeof LIBS)[number]

export interface BenchConfig {
  redisUrl: string
  /** Durable mode's store; its schema `postgresSchema` is created by the run and dropped at the end. */
  postgresUrl: string
  postgresSchema: string
  quick: boolean
  /** submit: total submits, and how many are in flight at once. */
  submitN: number
  submitInFlight: number
  /** drain: pre-loaded tasks. */
  drainN: number
  /** Worker concurrency for drain, latency and flat. */
  concurrency: number
  /** latency: producer rate (tasks/s) and duration (s). */
  latencyRate: number
  latencySeconds: number
  /** flat: tasks queued behind the timed slice in the small and the large case, and the slice size. */
  flatSmall: number
  flatLarge: number
  flatSlice: number
  /** Unreported submit+drain per library before the first figure, so both run JIT-warm code. */
  warmupN: number
  /** Each scenario runs this many times per library; the table shows the median. */
  rounds: number
  only: Scenario[]
  libs: Lib[]
  outDir: string
}

interface Flag {
  key: keyof BenchConfig
  flag: string
  env: string
  full: number
  quick: number
  help: string
}

const NUMERIC: Flag[] = [
  {
    key: 'submitN',
    flag: 'submit',
    env: 'BENCH_SUBMIT',
    full: 20_000,
    quick: 2_000,
    help: 'submits timed in the submit figure',
  },
  {
    key: 'submitInFlight',
    flag: 'in-flight',
    env: 'BENCH_IN_FLIGHT',
    full: 100,
    quick: 100,
    help: 'concurrent submit loops',
  },
  {
    key: 'drainN',
    flag: 'drain',
    env: 'BENCH_DRAIN',
    full: 50_000,
    quick: 5_000,
    help: 'pre-loaded tasks in the drain figure',
  },
  {
    key: 'concurrency',
    flag: 'concurrency',
    env: 'BENCH_CONCURRENCY',
    full: 100,
    quick: 100,
    help: 'worker concurrency',
  },
  {
    key: 'latencyRate',
    flag: 'rate',
    env: 'BENCH_RATE',
    full: 1_000,
    quick: 1_000,
    help: 'latency producer, tasks/s',
  },
  {
    key: 'latencySeconds',
    flag: 'seconds',
    env: 'BENCH_SECONDS',
    full: 10,
    quick: 2,
    help: 'latency producer duration, s',
  },
  {
    key: 'flatSmall',
    flag: 'flat-small',
    env: 'BENCH_FLAT_SMALL',
    full: 1_000,
    quick: 1_000,
    help: 'flat: small backlog',
  },
  {
    key: 'flatLarge',
    flag: 'flat-large',
    env: 'BENCH_FLAT_LARGE',
    full: 1_000_000,
    quick: 20_000,
    help: 'flat: large backlog',
  },
  {
    key: 'flatSlice',
    flag: 'flat-slice',
    env: 'BENCH_FLAT_SLICE',
    full: 10_000,
    quick: 2_000,
    help: 'flat: timed slice',
  },
  {
    key: 'warmupN',
    flag: 'warmup',
    env: 'BENCH_WARMUP',
    full: 5_000,
    quick: 1_000,
    help: 'warm-up tasks per library',
  },
  {
    key: 'rounds',
    flag: 'rounds',
    env: 'BENCH_ROUNDS',
    full: 1,
    quick: 1,
    help: 'repetitions (median reported)',
  },
]

export function usage(): string {
  const lines = [
    'usage: npm run bench -- [--quick] [--only=submit,drain,latency,flat] [--libs=tl,tlpg,bull] [--<flag>=<n>]...',
    '',
    '  --quick            short smoke run (env BENCH_QUICK=1)',
    `  --only=<list>      scenarios to run, of ${SCENARIOS.join(', ')} (env BENCH_ONLY)`,
    `  --libs=<list>      columns to run, of ${LIBS.join(', ')} (tlpg: taskloom durable mode) (env BENCH_LIBS)`,
    '  --out=<dir>        where latest.md and latest.json go (env BENCH_OUT; default .bench-out)',
    '  REDIS_URL          default redis://127.0.0.1:6379',
    '  DATABASE_URL       durable mode store, default postgres://postgres@127.0.0.1:5432/test;',
    '                     the run creates schema taskloom_bench there and drops it at the end',
  ]
  for (const f of NUMERIC) {
    lines.push(
      `  --${f.flag}=<n>`.padEnd(21) + `${f.help}; default ${f.full} (quick ${f.quick}) (env ${f.env})`,
    )
  }
  return lines.join('\n')
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n\n${usage()}`)
    const eq = arg.indexOf('=')
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1))
    else if (arg === '--quick' || arg === '--help') flags.set(arg.slice(2), '1')
    else if (i + 1 < argv.length) flags.set(arg.slice(2), argv[++i]!)
    else throw new Error(`flag ${arg} needs a value\n\n${usage()}`)
  }
  const known = new Set(['quick', 'help', 'only', 'libs', 'out', ...NUMERIC.map((f) => f.flag)])
  for (const name of flags.keys())
    if (!known.has(name)) throw new Error(`unknown flag --${name}\n\n${usage()}`)

  const quick = truthy(flags.get('quick') ?? env.BENCH_QUICK)
  const config: Record<string, unknown> = {
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    postgresUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    postgresSchema: 'taskloom_bench',
    quick,
    outDir: flags.get('out') ?? env.BENCH_OUT ?? '.bench-out',
  }
  for (const f of NUMERIC) {
    const raw = flags.get(f.flag) ?? env[f.env]
    const value = raw === undefined ? (quick ? f.quick : f.full) : Number(raw)
    if (!Number.isInteger(value) || value < (f.key === 'warmupN' || f.key === 'flatSmall' ? 0 : 1)) {
      throw new Error(`--${f.flag} (${f.env}) must be a positive integer, got ${raw}`)
    }
    config[f.key] = value
  }
  const only = (flags.get('only') ?? env.BENCH_ONLY ?? SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const s of only) {
    if (!(SCENARIOS as readonly string[]).includes(s))
      throw new Error(`unknown scenario ${s}; use ${SCENARIOS.join(', ')}`)
  }
  config.only = only
  const libs = (flags.get('libs') ?? env.BENCH_LIBS ?? LIBS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const l of libs) {
    if (!(LIBS as readonly string[]).includes(l)) throw new Error(`unknown lib ${l}; use ${LIBS.join(', ')}`)
  }
  if (libs.length === 0) throw new Error(`--libs needs at least one of ${LIBS.join(', ')}`)
  config.libs = libs
  if (flags.has('help')) {
    console.log(usage())
    process.exit(0)
  }
  return config as unknown as BenchConfig
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false'
}
