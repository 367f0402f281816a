/**
 * `taskloom/express`: the API as an Express 5 router (a middleware to mount under a prefix).
 * Express is imported for its types only. The router reads the body itself; if a body parser ran
 * first, it uses what that parser left (a Buffer, a string, or parsed JSON).
 * @example
 * import express from 'express'
 * import { createApi } from 'taskloom/http'
 * import { expressRouter } from 'taskloom/express'
 * const app = express()
 * app.use('/api/v1', expressRouter(createApi({ queue, tasks: [sendEmail] })))
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Mountable } from '../mountable.js'
import { readBody, writeResponse } from './read-body.js'

export function expressRouter(api: Mountable): RequestHandler {
  // Open at mount, so the scheduler runs before the first request.
  api.openInBackground()
  return (req: Request, res: Response, next: NextFunction) => {
    bodyOf(req, api.options.bodyLimit)
      .then((body) =>
        api.handle({ method: req.method, url: req.url, headers: req.headers, body, mountPath: req.baseUrl }),
      )
      .then((answer) => writeResponse(res, answer, req), next)
  }
}

function bodyOf(req: Request, limit: number): Promise<Uint8Array> {
  const parsed: unknown = req.body
  if (req.readableEnded && parsed !== undefined) {
    if (parsed instanceof Uint8Array) return Promise.resolve(parsed)
    if (typeof parsed === 'string') return Promise.resolve(Buffer.from(parsed))
    return Promise.resolve(Buffer.from(JSON.stringify(parsed)))
  }
  return readBody(req, limit)
}
