/** Reads a `node:http` request body, stopping at the API's limit (the core answers 413 past it). */
import type { IncomingMessage, ServerResponse } from 'node:http'

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

const draining = new WeakSet<IncomingMessage>()

/** Reads and drops the rest of a body (once per request), destroying the connection past the cap. */
function drain(req: IncomingMessage): void {
  if (draining.has(req)) return
  draining.add(req)
  let dropped = 0
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length
    if (dropped > DRAIN_CAP) req.destroy()
  })
  req.resume()
}

/** How long a client may take to finish sending a refused body before the connection is dropped. */
const DRAIN_MS = 30_000

/** Writes an API response to a `node:http` response. */
export function writeResponse(
  res: ServerResponse,
  answer: { status: number; headers: Record<string, string>; body: string },
  req?: IncomingMessage,
): void {
  res.statusCode = answer.status
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value)
  if (answer.status === 413 && req) {
    answerFirst(req, res, answer.body)
    return
  }
  if (answer.status === 413) res.setHeader('connection', 'close')
  res.end(answer.body)
}

/**
 * A refused body (413): the whole answer is sent at once, then the rest of the body is read and
 * dropped, and only when the client has sent it all is the connection closed. Closing a socket with
 * unread data resets it, and a client that writes its whole request before reading (many blocking
 * clients do) would lose the answer to the reset. Bounded: past `DRAIN_CAP` bytes or `DRAIN_MS`
 * the connection is dropped.
 */
export function answerFirst(req: IncomingMessage, res: ServerResponse, body: string): void {
  const bytes = Buffer.from(body)
  res.setHeader('content-length', bytes.length)
  res.setHeader('connection', 'close')
  if (req.complete) {
    res.end(bytes)
    return
  }
  res.write(bytes)
  let ended = false
  const end = () => {
    if (ended) return
    ended = true
    clearTimeout(timer)
    res.end()
  }
  const timer = setTimeout(() => {
    end()
    req.destroy()
  }, DRAIN_MS)
  timer.unref()
  req.once('end', end)
  req.once('close', end)
  drain(req)
}
