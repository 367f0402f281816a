/**
 * The OpenAPI 3.1 document, generated from the route table and the zod schemas that validate
 * requests (zod's `toJSONSchema`, JSON Schema 2020-12, which OpenAPI 3.1 uses as is).
 */
import { z } from 'zod'
import { PROBLEM_STATUS } from './problem.js'
import type { Route } from './route.js'
import { Problem } from './schemas.js'

const COMMON_PROBLEMS: Record<string, number[]> = {
  public: [],
  auth: [401, 403, 429],
}

const DESCRIPTIONS: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No content',
  400: 'Invalid request: bad fields (each named in `errors`), a malformed path (INVALID_REQUEST), or text that is not valid Unicode',
  401: 'Missing or invalid API key',
  403: 'The key lacks the needed scope',
  404: 'Not found (also for another tenant’s resources)',
  405: 'Method not allowed',
  409: 'Conflict with the current state',
  413: 'Body too large',
  415: 'Body is not application/json',
  422: 'The idempotency key was already used with a different task name or payload',
  429: 'Rate limit or monthly quota exceeded (see Retry-After and RateLimit-* headers)',
  501: 'Not available on this server',
  503: 'A backing service (Redis or PostgreSQL) is unavailable or not ready; retry after Retry-After',
}

export function buildOpenApi(routes: readonly Route[], version: string): Record<string, unknown> {
  const schemas: Record<string, unknown> = {}
  /** Converts one schema; named schemas (`.meta({ id })`) go to components and are referenced. */
  const convert = (schema: z.ZodType, io: 'input' | 'output'): unknown => {
    const json = z.toJSONSchema(schema, {
      target: 'draft-2020-12',
      io,
      unrepresentable: 'any',
      reused: 'inline',
      cycles: 'ref',
    }) as Record<string, unknown>
    // Named schemas (`.meta({ id })`) come back as $defs; they all go to components.
    const {
      $schema: _s,
      $defs,
      ...rest
    } = json as Record<string, unknown> & {
      $defs?: Record<string, unknown>
    }
    for (const [name, def] of Object.entries($defs ?? {})) schemas[name] = def
    return rest
  }
  const problemRef = convert(Problem, 'output')
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z]+)/g, '{$1}')
    const params = [...route.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }))
    const responses: Record<string, unknown> = {}
    for (const [status, schema] of Object.entries(route.responses)) {
      const s = Number(status)
      const content =
        schema === null
          ? route.path === '/metrics'
            ? { 'text/plain': { schema: { type: 'string' } } }
            : route.path === '/openapi.json'
              ? { 'application/json': { schema: { type: 'object' } } }
              : undefined
          : { 'application/json': { schema: convert(schema, 'output') } }
      const headers =
        route.scope === 'public'
          ? undefined
          : {
              'RateLimit-Limit': { schema: { type: 'integer' } },
              'RateLimit-Remaining': { schema: { type: 'integer' } },
              'RateLimit-Reset': { schema: { type: 'integer' } },
              ...(s === 200 && route.path === '/tasks' && route.method === 'POST'
                ? { 'Idempotent-Replayed': { schema: { type: 'string', enum: ['true'] } } }
                : {}),
            }
      responses[status] = {
        description: DESCRIPTIONS[s] ?? 'OK',
        ...(content ? { content } : {}),
        ...(headers ? { headers } : {}),
      }
    }
    const problems = new Set([
      ...(route.scope === 'public' ? COMMON_PROBLEMS.public! : COMMON_PROBLEMS.auth!),
      ...(route.problems ?? []),
      ...(route.body ? [400, 415] : []),
      ...(route.query ? [400] : []),
      // A path parameter can be badly percent-encoded: 400 INVALID_REQUEST.
      ...(params.length > 0 ? [400] : []),
      // The core refuses a body over the limit on any operation, whether or not it takes one.
      413,
      // Every operation that opens the key store, the audit log or the queue can find it down.
      ...(route.scope === 'public' ? [] : [503]),
    ])
    for (const status of [...problems].sort()) {
      responses[String(status)] ??= {
        description: DESCRIPTIONS[status] ?? 'Error',
        content: { 'application/problem+json': { schema: problemRef } },
        ...(status === 429 || status === 503
          ? { headers: { 'Retry-After': { schema: { type: 'integer' } } } }
          : {}),
      }
    }
    const query = route.query
      ? Object.entries(
          (convert(route.query, 'input') as { properties?: Record<string, unknown> }).properties ?? {},
        ).map(([name, schema]) => ({ name, in: 'query', required: false, schema }))
      : []
    const operation: Record<string, unknown> = {
      operationId: `${route.method.toLowerCase()}${route.path
        .split('/')
        .filter(Boolean)
        .map((p) => (p.startsWith(':') ? `By${cap(p.slice(1))}` : cap(p.replace(/[^A-Za-z]/g, ''))))
        .join('')}`,
      summary: route.summary,
      tags: [route.tag],
      ...(route.scope === 'public' ? { security: [] } : { 'x-required-scope': route.scope }),
      ...(params.length + query.length > 0 ? { parameters: [...params, ...query] } : {}),
      ...(route.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: convert(route.body, 'input') } },
            },
          }
        : {}),
      responses,
    }
    paths[path] ??= {}
    paths[path]![route.method.toLowerCase()] = operation
  }
  const document = {
    openapi: '3.1.0',
    info: {
      title: 'taskloom API',
      version,
      description:
        'Submit, inspect and manage tasks. Every request but /health, /ready and /openapi.json needs an ' +
        'API key in X-API-Key; errors are RFC 9457 problem details with a stable `code`.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ apiKey: [] }],
    tags: [{ name: 'tasks' }, { name: 'schedules' }, { name: 'admin' }, { name: 'system' }],
    paths,
    components: {
      securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
    },
    'x-problem-codes': PROBLEM_STATUS,
  }
  // Every reference points into components, where the named schemas are kept.
  return JSON.parse(JSON.stringify(document).replaceAll('"#/$defs/', '"#/components/schemas/'))
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1)
