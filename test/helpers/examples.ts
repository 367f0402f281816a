/**
 * Runs an example server as a user runs it (from source, through tsx with the Lua loader), on the
 * embedded defaults and a free port, and reads what it prints: `key <name> <secret>` lines, the URL
 * of its `… on http://…` line, and a last `try: …` line that says it is ready.
 */
import type { ChildProcess } from 'node:child_process'
import { spawnFixture } from './spawn-fixture.js'

const children: ChildProcess[] = []
/** Kills the examples still running (call it in afterEach). */
export function stopExamples(): void {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
}

/** Starts an example on a free port; resolves with its base URL and the keys it printed. */
export async function startExample(
  file: string,
): Promise<{ child: ChildProcess; base: string; keys: Record<string, string>; out: () => string }> {
  const child = spawnFixture(file, [], {
    env: { ...process.env, PORT: '0', REDIS_URL: '', DATABASE_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let out = ''
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const keys: Record<string, string> = {}
  const base = await new Promise<string>((resolve, reject) => {
    let url = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      for (const m of out.matchAll(/^key (\S+) (tlk_\S+)$/gm)) keys[m[1]!] = m[2]!
      url ||= out.match(/ on (http:\/\/\S+)$/m)?.[1] ?? ''
      // The examples print their `try:` line after the last key.
      if (url && /^try: /m.test(out)) resolve(url)
    })
    child.once('exit', (code) => reject(new Error(`example exited with ${code}: ${out}`)))
  })
  return { child, base, keys, out: () => out }
}
