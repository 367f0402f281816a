/**
 * `npx taskloom queue pause|resume|status <name> [--task <name> | --group <group>]`: flow control
 * of a queue from the command line, through `createQueue` like any process of the fleet.
 */
import { parseArgs } from 'node:util'
import { createQueue, type PauseTarget } from './index.js'

export const QUEUE_USAGE = `  taskloom queue pause <queue> [--task <name> | --group <group>] [--redis <url>]
  taskloom queue resume <queue> [--task <name> | --group <group>] [--redis <url>]
  taskloom queue status <queue> [--redis <url>]
                                                          fleet-wide pause and resume (default url: $REDIS_URL;
                                                          with --postgres or $DATABASE_URL, recorded durably)`

/** Thrown for a bad command line (the caller prints the usage). */
export class QueueUsageError extends Error {}

const silent = { debug() {}, info() {}, warn() {}, error() {} }

export async function queueCommand(args: string[]): Promise<number> {
  const [action, ...rest] = args
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      redis: { type: 'string' },
      postgres: { type: 'string' },
      schema: { type: 'string' },
      task: { type: 'string' },
      group: { type: 'string' },
    },
  })
  if (action !== 'pause' && action !== 'resume' && action !== 'status') {
    throw new QueueUsageError(
      `unknown queue action ${JSON.stringify(action ?? '')}: use pause, resume or status`,
    )
  }
  const name = positionals[0]
  if (!name || positionals.length > 1) throw new QueueUsageError(`queue ${action} needs one queue name`)
  const redis = values.redis ?? process.env.REDIS_URL
  if (!redis) throw new QueueUsageError('pass --redis <url> or set REDIS_URL: a pause must reach the fleet')
  const postgres = values.postgres ?? process.env.DATABASE_URL
  const queue = createQueue({
    name,
    redis,
    postgres: postgres ?? false,
    postgresSchema: values.schema,
    logger: silent,
  })
  try {
    const target: PauseTarget = { task: values.task, group: values.group }
    if (action === 'pause') await queue.pause(target)
    if (action === 'resume') await queue.resume(target)
    const { ready, processing, flow } = await queue.counts({ flow: true })
    const what = values.task ? `task ${values.task}` : values.group ? `group ${values.group}` : 'the queue'
    if (action !== 'status') process.stdout.write(`${action}d ${what} of queue ${name}\n`)
    const waiting = ready.critical + ready.high + ready.normal + ready.low
    const lines = [
      `queue ${name}: ${flow!.paused.queue ? 'PAUSED' : 'running'}; ${waiting} ready, ${processing} processing`,
      `paused task names: ${flow!.paused.tasks.join(', ') || 'none'}`,
      `paused groups: ${flow!.paused.groups.join(', ') || 'none'}`,
      ...flow!.waiting.map((w) => `waiting: ${w.kind} ${w.name} until ${new Date(w.until).toISOString()}`),
      ...flow!.groups
        .slice(0, 20)
        .map(
          (g) =>
            `group ${g.group}: ${g.ready} ready, ${g.running} running${g.blocked ? ` (${g.blocked})` : ''}`,
        ),
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
    return 0
  } finally {
    await queue.close()
  }
}
