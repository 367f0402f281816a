#!/usr/bin/env node
/**
 * `npx taskloom <command>`: operations on a taskloom deployment, through the public API only.
 *
 *   taskloom migrate [--postgres <url>] [--schema <name>]
 *     Applies missing migrations to PostgreSQL (default: $DATABASE_URL) and prints what it did.
 *   taskloom keys create --tenant <id> --scopes <s,s> [--name <n>] [--rate-limit <n>]
 *                        [--monthly-quota <n>] [--expires-at <iso>]
 *   taskloom keys create --operator [--name <n>] [--rate-limit <n>] [--expires-at <iso>]
 *   taskloom keys list [--tenant <id>]
 *   taskloom keys revoke <id|prefix> [--tenant <id>]
 *     Manage API keys of the REST API. The secret is printed once, at creation.
 *   taskloom tenants set <id> [--rate-limit <n|default>] [--monthly-quota <n|default>] [--scopes <s,s|default>]
 *   taskloom tenants show <id>
 *   taskloom tenants list
 *     What the operator grants each tenant: requests per minute and monthly submissions for all its
 *     keys together, and the scopes its keys may hold (admin: whether it may have admins).
 *   taskloom queue pause|resume <queue> [--task <name> | --group <group>] [--redis <url>]
 *   taskloom queue status <queue>
 *     Flow control: stops or restarts claims fleet-wide (see src/cli-queue.ts).
 */
import { parseArgs } from 'node:util'
import { QUEUE_USAGE, QueueUsageError, queueCommand } from './cli-queue.js'
import {
  isOperator,
  openApiKeys,
  type Scope,
  TENANT_SCOPES,
  type TenantScope,
  type TenantSettings,
} from './http/index.js'
import { migrate } from './index.js'

const USAGE = `usage:
  taskloom migrate [--postgres <url>] [--schema <name>]   apply missing migrations (default url: $DATABASE_URL)
  taskloom keys create --tenant <id> --scopes <${TENANT_SCOPES.join(',')}>
                       [--name <text>] [--rate-limit <per minute>] [--monthly-quota <n>] [--expires-at <ISO time>]
  taskloom keys create --operator [--name <text>] [--rate-limit <per minute>] [--expires-at <ISO time>]
                                                          an operator key: sets tenants, manages all keys, reads /metrics
  taskloom keys list [--tenant <id>]                      keys (never their secrets)
  taskloom keys revoke <key id or prefix> [--tenant <id>]
  taskloom tenants set <id> [--rate-limit <per minute>|default] [--monthly-quota <n>|default]
                            [--scopes <${TENANT_SCOPES.join(',')}>|default]
                                                          what a tenant's keys get, all together
  taskloom tenants show <id>
  taskloom tenants list
${QUEUE_USAGE}
  taskloom help
every command takes --postgres <url> (default: $DATABASE_URL) and --schema <name> (default: taskloom)`

class UsageError extends Error {}

const common = { postgres: { type: 'string' }, schema: { type: 'string' } } as const

function databaseUrl(given: string | undefined): string {
  const url = given ?? process.env.DATABASE_URL
  if (!url) throw new UsageError('pass --postgres <url> or set DATABASE_URL')
  return url
}

function positive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--${name} must be a positive integer, not ${JSON.stringify(text)}`)
  return n
}

async function keys(args: string[]): Promise<number> {
  const [action, ...rest] = args
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      ...common,
      tenant: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      'rate-limit': { type: 'string' },
      'monthly-quota': { type: 'string' },
      'expires-at': { type: 'string' },
      operator: { type: 'boolean' },
    },
  })
  if (action !== 'create' && action !== 'list' && action !== 'revoke') {
    throw new UsageError(`unknown keys action ${JSON.stringify(action ?? '')}: use create, list or revoke`)
  }
  const store = await openApiKeys({
    postgres: databaseUrl(values.postgres),
    schema: values.schema ?? 'taskloom',
  })
  try {
    if (action === 'create') {
      if (values.operator) {
        if (values.tenant || values.scopes || values['monthly-quota']) {
          throw new UsageError('an operator key has no --tenant, --scopes or --monthly-quota')
        }
      } else {
        if (!values.tenant) throw new UsageError('keys create needs --tenant <id> (or --operator)')
        if (!values.scopes)
          throw new UsageError(`keys create needs --scopes (some of ${TENANT_SCOPES.join(', ')})`)
      }
      let expiresAt: Date | undefined
      if (values['expires-at'] !== undefined) {
        expiresAt = new Date(values['expires-at'])
        if (Number.isNaN(expiresAt.getTime())) throw new UsageError('--expires-at must be an ISO time')
        if (expiresAt.getTime() <= Date.now()) {
          throw new UsageError(
            `--expires-at ${expiresAt.toISOString()} is not in the future: the key would be dead on arrival`,
          )
        }
      }
      const { key, info } = await store.create({
        tenantId: values.operator ? undefined : values.tenant,
        scopes: values.operator ? ['operator'] : (values.scopes!.split(',').map((s) => s.trim()) as Scope[]),
        name: values.name,
        rateLimit: positive('rate-limit', values['rate-limit']),
        monthlyQuota: positive('monthly-quota', values['monthly-quota']),
        expiresAt,
      })
      process.stdout.write(
        (values.operator
          ? `created operator key ${info.id} (prefix ${info.prefix})\n`
          : `created key ${info.id} (prefix ${info.prefix}) for tenant ${info.tenantId}, scopes ${info.scopes.join(',')}\n`) +
          'the secret is shown once; store it now:\n' +
          `${key}\n`,
      )
      return 0
    }
    if (action === 'list') {
      const list = await store.list(values.tenant)
      process.stdout.write('id\tprefix\ttenant\tscopes\tstate\tcreated\texpires\tlast used\n')
      for (const k of list) {
        const state = k.revokedAt
          ? 'revoked'
          : !k.isActive
            ? 'inactive'
            : k.expiresAt && k.expiresAt < new Date()
              ? 'expired'
              : 'active'
        process.stdout.write(
          `${k.id}\t${k.prefix}\t${isOperator(k) ? '(operator)' : k.tenantId}\t${k.scopes.join(',')}\t${state}\t${k.createdAt.toISOString()}\t${k.expiresAt?.toISOString() ?? '-'}\t${k.lastUsedAt?.toISOString() ?? '-'}\n`,
        )
      }
      return 0
    }
    const target = positionals[0]
    if (!target) throw new UsageError('keys revoke needs the key id or prefix')
    const revoked = await store.revoke(target, values.tenant)
    if (!revoked) {
      process.stderr.write(`taskloom keys revoke: no key ${JSON.stringify(target)}\n`)
      return 1
    }
    process.stdout.write(
      `revoked key ${revoked.id} (prefix ${revoked.prefix}) ${isOperator(revoked) ? '(operator)' : `of tenant ${revoked.tenantId}`}\n`,
    )
    return 0
  } finally {
    await store.close()
  }
}

/** A setting's value: a positive integer, or `default` (null: the API's default). */
function setting(name: string, text: string | undefined): number | null | undefined {
  return text === 'default' ? null : positive(name, text)
}

/** `--scopes`: a list (empty: none), or `default` (null: every tenant scope). */
function tenantScopes(text: string | undefined): TenantScope[] | null | undefined {
  if (text === undefined) return undefined
  if (text === 'default') return null
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean) as TenantScope[]
}

function describeTenant(t: TenantSettings): string {
  const show = (v: unknown) => (v === null ? 'default' : String(v))
  return `${t.tenantId}\trate limit ${show(t.rateLimit)}/min\tmonthly quota ${show(t.monthlyQuota)}\tscopes ${t.scopes === null ? 'default (all)' : t.scopes.join(',') || '(none)'}\n`
}

async function tenants(args: string[]): Promise<number> {
  const [action, ...rest] = args
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      ...common,
      'rate-limit': { type: 'string' },
      'monthly-quota': { type: 'string' },
      scopes: { type: 'string' },
    },
  })
  if (action !== 'set' && action !== 'show' && action !== 'list') {
    throw new UsageError(`unknown tenants action ${JSON.stringify(action ?? '')}: use set, show or list`)
  }
  const id = positionals[0]
  if (action !== 'list' && !id) throw new UsageError(`tenants ${action} needs the tenant id`)
  const patch =
    action === 'set'
      ? {
          rateLimit: setting('rate-limit', values['rate-limit']),
          monthlyQuota: setting('monthly-quota', values['monthly-quota']),
          scopes: tenantScopes(values.scopes),
        }
      : undefined
  if (
    patch &&
    patch.rateLimit === undefined &&
    patch.monthlyQuota === undefined &&
    patch.scopes === undefined
  ) {
    throw new UsageError('tenants set needs --rate-limit, --monthly-quota or --scopes')
  }
  const store = await openApiKeys({
    postgres: databaseUrl(values.postgres),
    schema: values.schema ?? 'taskloom',
  })
  try {
    const { tenants } = store
    if (action === 'list') {
      for (const t of await tenants.list()) process.stdout.write(describeTenant(t))
      return 0
    }
    const settings = patch ? await tenants.set(id!, patch) : await tenants.get(id!)
    process.stdout.write(describeTenant(settings))
    return 0
  } finally {
    await store.close()
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`)
    return command === undefined ? 2 : 0
  }
  if (command === 'keys') return keys(rest)
  if (command === 'tenants') return tenants(rest)
  if (command === 'queue') return queueCommand(rest)
  if (command !== 'migrate') {
    process.stderr.write(`taskloom: unknown command ${JSON.stringify(command)}\n${USAGE}\n`)
    return 2
  }
  const { values } = parseArgs({ args: rest, options: common, strict: true })
  const url = databaseUrl(values.postgres)
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
    if (err instanceof UsageError || err instanceof QueueUsageError) {
      process.stderr.write(`taskloom: ${err.message}\n${USAGE}\n`)
      process.exitCode = 2
      return
    }
    process.stderr.write(`taskloom: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
