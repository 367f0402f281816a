/**
 * A tenant admin's endpoints (scope `admin`, scoped to the key's tenant): dead letters and the
 * tenant's API keys, which it manages within its own rights (key-policy.ts). The worker fleet is the
 * operator's (`GET /workers`).
 */

import type { z } from 'zod'
import { TaskloomError } from '../errors.js'
import type { KeyRequest } from './key-policy.js'
import { boundByCreator } from './key-policy.js'
import { deadTaskBody, keyBody } from './present.js'
import { HttpProblem } from './problem.js'
import type { Route } from './route.js'
import { ownTask, taskPage } from './routes-tasks.js'
import {
  ApiKey,
  CreatedKey,
  CreateKeyBody,
  DeadTask,
  DeadTaskList,
  KeyList,
  PageQuery,
  RetryAllResponse,
  RetryResponse,
} from './schemas.js'

/** A key creation body as `ApiKeys.create` takes it. */
export function keyRequest(body: z.infer<typeof CreateKeyBody>): KeyRequest {
  return {
    scopes: body.scopes,
    name: body.name,
    rateLimit: body.rate_limit,
    monthlyQuota: body.monthly_quota,
    expiresAt: body.expires_at === undefined ? undefined : new Date(body.expires_at),
  }
}

export const adminRoutes: Route[] = [
  {
    method: 'GET',
    path: '/admin/dlq',
    scope: 'admin',
    tag: 'admin',
    summary: "The tenant's dead-lettered tasks (retries exhausted), newest first",
    query: PageQuery,
    responses: { 200: DeadTaskList },
    async handle(ctx) {
      const q = PageQuery.parse(Object.fromEntries(ctx.query))
      return taskPage(ctx, { status: 'failed', limit: q.limit, offset: q.offset })
    },
  },
  {
    method: 'GET',
    path: '/admin/dlq/:id',
    scope: 'admin',
    tag: 'admin',
    summary: 'Inspect a dead-lettered task: payload, last error and every failed attempt',
    responses: { 200: DeadTask },
    problems: [404],
    async handle(ctx) {
      const t = await ownTask(ctx, ctx.params.id)
      if (t.status !== 'failed')
        throw new HttpProblem('NOT_FOUND', `task ${t.id} is not in the dead-letter queue`)
      return { status: 200, body: deadTaskBody(t) }
    },
  },
  {
    method: 'POST',
    path: '/admin/dlq/:id/retry',
    scope: 'admin',
    tag: 'admin',
    summary: 'Put a dead-lettered task back in the queue with a fresh attempt budget',
    responses: { 200: RetryResponse },
    problems: [404, 409],
    async handle(ctx) {
      const t = await ownTask(ctx, ctx.params.id)
      await ctx.services.queue.dlq.retry(t.id)
      ctx.audit('task.retry', t.id, { name: t.name })
      const now = await ctx.services.queue.get(t.id)
      return { status: 200, body: { task_id: t.id, status: now?.status ?? 'queued' } }
    },
  },
  {
    method: 'POST',
    path: '/admin/dlq/retry',
    scope: 'admin',
    tag: 'admin',
    summary: "Retry every one of the tenant's dead-lettered tasks",
    responses: { 200: RetryAllResponse },
    async handle(ctx) {
      const { queue } = ctx.services
      // Collect first, then retry: the store's view of a retried task catches up asynchronously.
      const ids: string[] = []
      for (let offset = 0; ; offset += 1000) {
        const page = await queue.list({ tenantId: ctx.key.tenantId, status: 'failed', limit: 1000, offset })
        ids.push(...page.tasks.filter((t) => t.status === 'failed').map((t) => t.id))
        if (page.tasks.length < 1000) break
      }
      let retried = 0
      for (const id of ids) {
        try {
          await queue.dlq.retry(id)
          retried += 1
        } catch (err) {
          if (!(err instanceof TaskloomError && err.code === 'NOT_IN_DLQ')) throw err
        }
      }
      ctx.audit('tasks.retry_all', null, { retried })
      return { status: 200, body: { retried } }
    },
  },
  {
    method: 'POST',
    path: '/admin/keys',
    scope: 'admin',
    tag: 'admin',
    summary:
      'Create an API key for this tenant, with no more than the creating key holds (never admin); the secret is in this answer only',
    body: CreateKeyBody,
    responses: { 201: CreatedKey },
    problems: [400, 415],
    async handle(ctx) {
      const body = ctx.body as z.infer<typeof CreateKeyBody>
      const request = boundByCreator(keyRequest(body), ctx.key, ctx.tenant!)
      const { key, info } = await ctx.services.keys.create(request)
      ctx.audit('key.create', info.id, { prefix: info.prefix, scopes: info.scopes })
      return { status: 201, body: { ...keyBody(info), key } }
    },
  },
  {
    method: 'GET',
    path: '/admin/keys',
    scope: 'admin',
    tag: 'admin',
    summary: "The tenant's API keys (never their secrets)",
    responses: { 200: KeyList },
    async handle(ctx) {
      return { status: 200, body: { keys: (await ctx.services.keys.list(ctx.key.tenantId)).map(keyBody) } }
    },
  },
  {
    method: 'DELETE',
    path: '/admin/keys/:id',
    scope: 'admin',
    tag: 'admin',
    summary: 'Revoke an API key (by id or prefix); it stops working at once on this server',
    responses: { 200: ApiKey },
    problems: [404],
    async handle(ctx) {
      const id = ctx.params.id ?? ''
      const revoked = /^[A-Za-z0-9_-]{1,100}$/.test(id)
        ? await ctx.services.keys.revoke(id, ctx.key.tenantId)
        : null
      if (!revoked) throw new HttpProblem('NOT_FOUND', `no API key ${id}`)
      ctx.services.forgetKey(revoked.id)
      ctx.audit('key.revoke', revoked.id, { prefix: revoked.prefix })
      return { status: 200, body: keyBody(revoked) }
    },
  },
]
