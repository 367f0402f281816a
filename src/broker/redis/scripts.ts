/**
 * Loads the Lua scripts (one operation per file, `common.lua`, `flow-core.lua` and `deps.lua` prepended) and runs them with
 * EVALSHA, falling back to EVAL once when the server does not know the script yet.
 */
import { createHash } from 'node:crypto'
import type { RedisClient } from './connection.js'
import breaker from './lua/breaker.lua'
import cancel from './lua/cancel.lua'
import claim from './lua/claim.lua'
import common from './lua/common.lua'
import complete from './lua/complete.lua'
import defer from './lua/defer.lua'
import deps from './lua/deps.lua'
import enqueue from './lua/enqueue.lua'
import enqueueFlow from './lua/enqueue-flow.lua'
import epoch from './lua/epoch.lua'
import extend from './lua/extend.lua'
import fail from './lua/fail.lua'
import fleet from './lua/fleet.lua'
import flow from './lua/flow.lua'
import flowCore from './lua/flow-core.lua'
import lock from './lua/lock.lua'
import release from './lua/release.lua'
import report from './lua/report.lua'
import restore from './lua/restore.lua'
import retryDead from './lua/retry-dead.lua'

const sources = {
  breaker,
  cancel,
  claim,
  complete,
  defer,
  enqueue,
  enqueueFlow,
  epoch,
  extend,
  fail,
  fleet,
  flow,
  lock,
  release,
  report,
  restore,
  retryDead,
}
export type ScriptName = keyof typeof sources

interface Script {
  body: string
  sha: string
}

const scripts = Object.fromEntries(
  Object.entries(sources).map(([name, source]) => {
    const body = `${common}\n${flowCore}\n${deps}\n${source}`
    return [name, { body, sha: createHash('sha1').update(body).digest('hex') }]
  }),
) as Record<ScriptName, Script>

/** Runs `name` with the queue's fixed keys and the given arguments. */
export async function runScript(
  redis: RedisClient,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const script = scripts[name]
  // One array, not spread arguments: a large flow has more arguments than a call stack holds.
  const all = [keys.length, ...keys, ...args]
  try {
    return await redis.call('evalsha', [script.sha, ...all])
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    return redis.call('eval', [script.body, ...all])
  }
}
