/** Reads a `node:http` request body, stopping at the API's limit (the core answers 413 past it). */
import type { IncomingMessage } from 'node:http'

/** Bytes read past the limit before giving up on draining and closing the connection. */
const DRAIN_CAP = 64 * 1024 * 1024

/**
 * The body, or its first `limit + 1` bytes when it is larger (enough for the core to refuse it).
 * The rest of an oversized body is read and dropped so the client sees the 413, up to a cap.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) {
    drain(req)
    return Promise.resolve(new Uint8Array(limit + 1))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    const onData = (chunk: Buffer) => {
      if (done) return
      size += chunk.length
      if (size > limit) {
        done = true
        req.off('data', onData)
        drain(req)
        resolve(new Uint8Array(limit + 1))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.once('end', () => {
      if (!done) {
        done = true
        resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
      }
    })
    req.once('error', (err) => {
      if (!done) {
        done = true
        reject(err)
      }
    })
  })
}

function drain(req: IncomingMessage): void {
  let dropped = 0
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length
    if (dropped > DRAIN_CAP) req.destroy()
  })
  req.resume()
}

/** Writes an API response to a `node:http` response. */
export function writeResponse(
  res: import('node:http').ServerResponse,
  answer: { status: number; headers: Record<string, string>; body: string },
): void {
  res.statusCode = answer.status
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value)
  if (answer.status === 413) res.setHeader('connection', 'close')
  res.end(answer.body)
}
