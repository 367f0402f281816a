/**
 * Runs a TypeScript file of the project (a fixture under test/fixtures/) in a process of its own,
 * through tsx with the Lua loader registered, as `npm run` scripts do.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'

export function spawnFixture(file: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', 'tsx', '--import', './scripts/register-lua.mjs', file, ...args],
    options,
  )
}
