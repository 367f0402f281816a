/**
 * The worker process of the Kubernetes example. Environment:
 *   REDIS_URL (required), DATABASE_URL (optional: the durable record), QUEUE_NAME (default orders),
 *   CONCURRENCY_MIN / CONCURRENCY_MAX (default 10 / 100), METRICS_PORT (default 9464),
 *   GRACE_MS (default 20000; keep it below terminationGracePeriodSeconds).
 * Serves /metrics (Prometheus) and /healthz (liveness: 503 once heartbeats or lease renewals have
 * failed, or the event loop was blocked, for longer than 60 s), and shuts down gracefully on SIGTERM.
 */
import { createServer } from 'node:http'
import { createQueue, createWorker, defineTask, livenessHandler } from 'taskloom'
import { z } from 'zod'
import { renderMetrics } from './metrics.mjs'

const env = process.env
if (!env.REDIS_URL) throw new Error('REDIS_URL is required')
const queue = createQueue({
  name: env.QUEUE_NAME ?? 'orders',
  redis: env.REDIS_URL,
  ...(env.DATABASE_URL ? { postgres: env.DATABASE_URL } : {}),
})

export const processOrder = defineTask({
  name: 'process-order',
  input: z.object({ orderId: z.string() }),
  breaker: 'payments',
})

const worker = createWorker({
  queue,
  concurrency: { min: Number(env.CONCURRENCY_MIN ?? 10), max: Number(env.CONCURRENCY_MAX ?? 100) },
})
worker.handle(processOrder, async (input, ctx) => {
  ctx.logger.info({ order_id: input.orderId }, 'processing order')
  return { orderId: input.orderId, processedBy: worker.id }
})

const liveness = livenessHandler(worker, { thresholdMs: 60_000 })
const server = createServer((req, res) => {
  if (req.url === '/metrics') {
    renderMetrics(queue, worker).then(
      (body) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body),
      (err) => res.writeHead(503).end(String(err)),
    )
  } else if (req.url === '/healthz') {
    // Kubernetes restarts the pod when this fails (see livenessProbe in deployment.yaml).
    liveness(req, res)
  } else res.writeHead(404).end()
})

await worker.start()
server.listen(Number(env.METRICS_PORT ?? 9464))

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    if (stopping) return
    stopping = true
    await worker.close({ graceMs: Number(env.GRACE_MS ?? 20_000) })
    await queue.close()
    server.close()
    process.exit(0)
  })
}
