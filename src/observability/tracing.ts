/**
 * Spans through `@opentelemetry/api` only: without a registered SDK every call here is a no-op
 * (the API's no-op tracer), with one the spans follow the OpenTelemetry messaging conventions.
 *
 * The trace context travels inside the task (`tc`: a W3C `traceparent`, then `\n` and the
 * `tracestate` when there is one), so a worker in another process continues the submitter's trace:
 *
 *   send <queue> (PRODUCER, on submit)
 *     ├─ wait <queue>     (from submit, or the retry's due time, to the claim)
 *     └─ process <queue>  (CONSUMER: the handler; a link to the producer too)
 *          └─ settle <queue> (CLIENT: acknowledging the result or the failure to the broker)
 *
 * Span names are `{messaging.operation.name} {messaging.destination.name}` (the OpenTelemetry
 * messaging conventions); `messaging.client.id` is the worker id on the consumer side and this
 * process's id (`host:pid`) on the producer side.
 */

import { hostname } from 'node:os'
import {
  type Attributes,
  type Context,
  context,
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import type { ClaimedTask, NewTask } from '../broker/broker.js'

const TRACER_NAME = 'taskloom'
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

function tracer() {
  return trace.getTracer(TRACER_NAME)
}

/** The task's `tc` form of a span context; undefined for an invalid (no-op) one. */
export function encodeTraceContext(sc: SpanContext): string | undefined {
  if (!isSpanContextValid(sc)) return undefined
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, '0')
  const parent = `00-${sc.traceId}-${sc.spanId}-${flags}`
  const state = sc.traceState?.serialize()
  return state ? `${parent}\n${state}` : parent
}

/** The remote span context in a task's `tc`, or undefined when absent or malformed. */
export function decodeTraceContext(tc: string | undefined): SpanContext | undefined {
  if (!tc) return undefined
  const newline = tc.indexOf('\n')
  const parent = newline === -1 ? tc : tc.slice(0, newline)
  const m = TRACEPARENT.exec(parent.trim())
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return undefined
  const sc: SpanContext = {
    traceId: m[2]!,
    spanId: m[3]!,
    traceFlags: Number.parseInt(m[4]!, 16) & 0x01,
    isRemote: true,
  }
  if (newline !== -1) {
    try {
      sc.traceState = createTraceState(tc.slice(newline + 1))
    } catch {
      // A bad tracestate is dropped; the traceparent alone still joins the trace.
    }
  }
  return isSpanContextValid(sc) ? sc : undefined
}

/** The producer side's `messaging.client.id`: this process. */
const PRODUCER_CLIENT_ID = `${hostname()}:${process.pid}`

function producerAttributes(queue: string, operation: string, name: string): Attributes {
  return {
    'messaging.system': 'taskloom',
    'messaging.destination.name': queue,
    'messaging.operation.type': operation,
    'messaging.operation.name': name,
    'messaging.client.id': PRODUCER_CLIENT_ID,
  }
}

function fail(span: Span, error: unknown): void {
  const err = error instanceof Error ? error : new Error(String(error))
  span.recordException(err)
  span.setAttribute('error.type', err.name)
  span.setStatus({ code: SpanStatusCode.ERROR, message: err.message })
}

/**
 * Runs a submit inside a PRODUCER span (`send <queue>`) and writes that span's context into every
 * task's `tc` first, so the workers' spans join this trace.
 */
export async function traceSubmit<T>(queue: string, tasks: NewTask[], submit: () => Promise<T>): Promise<T> {
  const span = tracer().startSpan(`send ${queue}`, { kind: SpanKind.PRODUCER })
  if (span.isRecording()) {
    const attributes = producerAttributes(queue, 'send', 'send')
    if (tasks.length === 1) {
      const t = tasks[0]!
      attributes['messaging.message.id'] = t.id
      attributes['taskloom.task.name'] = t.name
      attributes['taskloom.tenant_id'] = t.tenantId
      attributes['taskloom.task.priority'] = t.priority
    } else {
      attributes['messaging.batch.message_count'] = tasks.length
    }
    span.setAttributes(attributes)
  }
  const tc = encodeTraceContext(span.spanContext())
  // No SDK and no active trace: nothing to record or propagate.
  if (tc === undefined && !span.isRecording()) return submit()
  for (const t of tasks) t.tc = tc
  try {
    return await context.with(trace.setSpan(context.active(), span), submit)
  } catch (err) {
    fail(span, err)
    throw err
  } finally {
    span.end()
  }
}

/** The consumer side of one claimed task: see the module comment for the span tree. */
export interface TaskSpans {
  /** Runs the handler with the process span active, so spans the handler makes are its children. */
  run<T>(fn: () => Promise<T>): Promise<T>
  /** Runs the result processing (acknowledgement) in a `settle` span, child of the process span. */
  settle<T>(outcome: 'completed' | 'failed' | 'deferred', fn: () => Promise<T>): Promise<T>
  /** Ends the process span; an error marks it failed. */
  end(error?: unknown): void
}

/**
 * Records the queue-wait span of a claimed task (ending now) and starts its process span, as
 * children of the submitter's span when the task carries one.
 */
export function startTaskSpans(queue: string, workerId: string, task: ClaimedTask): TaskSpans {
  const t = tracer()
  const now = Date.now()
  const producer = decodeTraceContext(task.tc)
  const parent: Context = producer ? trace.setSpanContext(ROOT_CONTEXT, producer) : ROOT_CONTEXT
  const process = t.startSpan(
    `process ${queue}`,
    { kind: SpanKind.CONSUMER, startTime: now, links: producer ? [{ context: producer }] : undefined },
    parent,
  )
  // Not recording: no SDK, or not sampled. The context still flows to the handler; nothing else is
  // made. (Attributes are set after the start so that this common case builds none.)
  const recording = process.isRecording()
  if (recording) {
    process.setAttributes(consumerAttributes(queue, 'process', 'process', task, workerId))
    const attributes = consumerAttributes(queue, 'receive', 'wait', task, workerId)
    attributes['taskloom.pickup_latency_ms'] = Math.max(now - task.runAt, 0)
    const waitStart = task.attempt === 1 ? task.createdAt : task.runAt
    t.startSpan(
      `wait ${queue}`,
      { kind: SpanKind.INTERNAL, startTime: Math.min(waitStart, now), attributes },
      parent,
    ).end(now)
  }
  // No SDK and no trace in the task: the handler needs no context either.
  const silent = !recording && producer === undefined
  const active = silent ? parent : trace.setSpan(parent, process)
  return {
    run: (fn) => (silent ? fn() : context.with(active, fn)),
    async settle(outcome, fn) {
      if (!recording) return fn()
      const attributes = consumerAttributes(queue, 'settle', 'settle', task, workerId)
      attributes['taskloom.settle.outcome'] = outcome
      const span = t.startSpan(`settle ${queue}`, { kind: SpanKind.CLIENT, attributes }, active)
      try {
        return await context.with(trace.setSpan(active, span), fn)
      } catch (err) {
        fail(span, err)
        throw err
      } finally {
        span.end()
      }
    },
    end(error) {
      if (error !== undefined) fail(process, error)
      process.end()
    },
  }
}

/** One literal per span: object spread of these dotted keys measured ~9 µs per task. */
function consumerAttributes(
  queue: string,
  operation: string,
  name: string,
  task: ClaimedTask,
  workerId: string,
): Attributes {
  return {
    'messaging.system': 'taskloom',
    'messaging.destination.name': queue,
    'messaging.operation.type': operation,
    'messaging.operation.name': name,
    'messaging.message.id': task.id,
    'taskloom.task.name': task.name,
    'taskloom.task.attempt': task.attempt,
    'taskloom.tenant_id': task.tenantId,
    'taskloom.worker.id': workerId,
    'messaging.client.id': workerId,
  }
}
