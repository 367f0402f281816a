/**
 * `taskloom/fastify`: the API as a Fastify 5 plugin. Register it with a prefix; inside its own
 * scope it takes every body as raw bytes (the core parses and validates), so Fastify's JSON parser
 * and error format do not apply to it. Fastify is imported for its types only.
 * @example
 * import Fastify from 'fastify'
 * import { createApi } from 'taskloom/http'
 * import { fastifyPlugin } from 'taskloom/fastify'
 * const app = Fastify()
 * await app.register(fastifyPlugin, { api: createApi({ queue, tasks }), prefix: '/api/v1' })
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ApiResponse } from '../api.js'
import type { Mountable } from '../mountable.js'
import { answerFirst } from './read-body.js'

export interface FastifyPluginOptions {
  /** The REST API (`createApi`) or the dashboard (`createDashboard`). */
  api: Mountable
  prefix?: string
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

export async function fastifyPlugin(app: FastifyInstance, options: FastifyPluginOptions): Promise<void> {
  const { api } = options
  // Open at registration, so the scheduler runs before the first request.
  api.openInBackground()
  const prefix = app.prefix
  const send = (reply: FastifyReply, answer: ApiResponse) =>
    // A Buffer, so Fastify sends the core's content type as is (it appends a charset to strings).
    reply.code(answer.status).headers(answer.headers).send(Buffer.from(answer.body))
  const relative = (url: string) => {
    const rel = url.startsWith(prefix) ? url.slice(prefix.length) : url
    return rel.startsWith('/') ? rel : `/${rel}`
  }
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body instanceof Uint8Array ? request.body : undefined
    const answer = await api.handle({
      method: request.method,
      url: relative(request.url),
      headers: request.headers,
      body,
      mountPath: prefix,
    })
    return send(reply, answer)
  }
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: api.options.bodyLimit },
    (_req, body, done) => {
      done(null, body)
    },
  )
  app.setErrorHandler((error: { statusCode?: number; message?: string }, request, reply) => {
    const status = error.statusCode ?? 500
    const path = relative(request.url).split('?')[0] ?? '/'
    if (status === 413) {
      // Answer at once, then read and drop the rest of the body before closing (see answerFirst).
      return tooLarge(api, request, reply, path)
    }
    if (status === 415)
      return send(reply, api.problem('UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json', path))
    if (status >= 400 && status < 500)
      return send(reply, api.problem('INVALID_REQUEST', error.message ?? 'bad request', path))
    request.log.error(error)
    return send(reply, api.problem('INTERNAL', 'internal error', path))
  })
  app.setNotFoundHandler(handler)
  app.route({ method: METHODS, url: '/', handler })
  app.route({ method: METHODS, url: '/*', handler })
}

/**
 * Fastify refuses some requests before any plugin runs (a malformed URL, such as a bad
 * percent-encoding). Pass this as Fastify's `frameworkErrors` option so those answers are problem
 * documents too.
 * @example
 * const app = Fastify({ frameworkErrors: fastifyFrameworkErrors(api) })
 */
export function fastifyFrameworkErrors(api: Mountable) {
  return (error: { statusCode?: number; message?: string }, request: FastifyRequest, reply: FastifyReply) => {
    const status = error.statusCode ?? 400
    const path = (request.url ?? '/').split('?')[0] ?? '/'
    if (status === 413) return tooLarge(api, request, reply, path)
    const answer = api.problem('INVALID_REQUEST', error.message ?? 'bad request', path)
    reply.code(answer.status).headers(answer.headers).send(Buffer.from(answer.body))
  }
}

/** A 413 written on the raw response, so the connection closes only once the body is drained. */
function tooLarge(api: Mountable, request: FastifyRequest, reply: FastifyReply, path: string): void {
  const answer = api.problem('PAYLOAD_TOO_LARGE', `the body exceeds ${api.options.bodyLimit} bytes`, path)
  reply.hijack()
  reply.raw.statusCode = answer.status
  for (const [name, value] of Object.entries(answer.headers)) reply.raw.setHeader(name, value)
  answerFirst(request.raw, reply.raw, answer.body)
}
