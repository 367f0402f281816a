/**
 * `taskloom/observability`: Prometheus metrics (prom-client), trace propagation helpers
 * (@opentelemetry/api) and pino options for the spec's JSON log fields.
 */

export { pinoOptions, traceFields } from '../logger.js'
export {
  createMetrics,
  type MetricsOptions,
  type ObserveOptions,
  type PoolLike,
  TaskloomMetrics,
} from './metrics.js'
export { decodeTraceContext, encodeTraceContext } from './tracing.js'
