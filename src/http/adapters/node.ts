/**
 * `taskloom/node`: the API as a `node:http` request handler.
 * @example
 * import { createServer } from 'node:http'
 * import { createApi } from 'taskloom/http'
 * import { nodeHandler } from 'taskloom/node'
 * createServer(nodeHandler(createApi({ queue, tasks }), { prefix: '/api/v1' })).listen(3000)
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Api } from '../api.js'
import type { Mountable } from '../mountable.js'
import { readBody, writeResponse } from './read-body.js'

export interface NodeHandlerOptions {
  /** Where the API is mounted, e.g. '/api/v1'. Default: the root. */
  prefix?: string
}

export type NodeHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void

export function nodeHandler(api: Mountable, options: NodeHandlerOptions = {}): NodeHandler {
  const prefix = (options.prefix ?? '').replace(/\/+$/, '')
  // Open at mount, so the scheduler runs before the first request.
  api.openInBackground()
  return (req, res, next) => {
    const url = req.url ?? '/'
    let rel: string | undefined = url
    if (prefix) {
      const after = url.charAt(prefix.length)
      rel =
        url.startsWith(prefix) && (after === '' || after === '/' || after === '?')
          ? url.slice(prefix.length)
          : undefined
      if (rel !== undefined && !rel.startsWith('/')) rel = `/${rel}`
    }
    if (rel === undefined) {
      if (next) return next()
      return writeResponse(res, api.problem('ROUTE_NOT_FOUND', `no endpoint at ${url.split('?')[0]}`, url))
    }
    const target = rel
    readBody(req, api.options.bodyLimit)
      .then((body) =>
        api.handle({
          method: req.method ?? 'GET',
          url: target,
          headers: req.headers,
          body,
          mountPath: prefix,
        }),
      )
      .then(
        (answer) => writeResponse(res, answer, req),
        (err: unknown) => {
          if (next) return next(err)
          res.destroy(err as Error)
        },
      )
  }
}

/**
 * A `node:http` handler that serves only `GET /metrics` (the API's `metrics`, no API key): for a
 * listener the host keeps private, e.g. on loopback or a port only Prometheus reaches. The metrics
 * show every tenant, so never mount this where tenants can reach it.
 * @example
 * createServer(metricsHandler(api)).listen(9464, '127.0.0.1')
 */
export function metricsHandler(api: Api, options: { path?: string } = {}): NodeHandler {
  const path = options.path ?? '/metrics'
  return (req, res) => {
    const target = (req.url ?? '/').split('?')[0]
    req.resume()
    if (target !== path) {
      return writeResponse(res, api.problem('ROUTE_NOT_FOUND', `no endpoint at ${target}`, target ?? '/'))
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return writeResponse(
        res,
        api.problem('METHOD_NOT_ALLOWED', `${req.method} is not allowed at ${path}`, path, {
          allow: 'GET, HEAD',
        }),
      )
    }
    api.metricsResponse().then(
      (answer) => writeResponse(res, req.method === 'HEAD' ? { ...answer, body: '' } : answer),
      (err: unknown) => res.destroy(err as Error),
    )
  }
}
