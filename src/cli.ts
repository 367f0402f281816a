#!/usr/bin/env node
/**
 * `npx taskloom <command>`: operations on a taskloom deployment, through the public API only.
 *
 *   taskloom migrate [--postgres <url>] [--schema <name>]
 *     Applies missing migrations to PostgreSQL (default: $DATABASE_URL) and prints what it did.
 */
import { parseArgs } from 'node:util'
import { migrate } from './index.js'

const USAGE = `usage:
  taskloom migrate [--postgres <url>] [--schema <name>]   apply missing migrations (default url: $DATABASE_URL)
  taskloom help`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`)
    return command === undefined ? 2 : 0
  }
  if (command !== 'migrate') {
    process.stderr.write(`taskloom: unknown command ${JSON.stringify(command)}\n${USAGE}\n`)
    return 2
  }
  const { values } = parseArgs({
    args: rest,
    options: { postgres: { type: 'string' }, schema: { type: 'string' } },
    strict: true,
  })
  const url = values.postgres ?? process.env.DATABASE_URL
  if (!url) {
    process.stderr.write('taskloom migrate: pass --postgres <url> or set DATABASE_URL\n')
    return 2
  }
  const { schema, applied, version } = await migrate(url, values.schema)
  process.stdout.write(
    applied.length === 0
      ? `schema "${schema}" is up to date at version ${version}\n`
      : `schema "${schema}": applied ${applied.join(', ')}; now at version ${version}\n`,
  )
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`taskloom: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
