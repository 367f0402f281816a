/**
 * A pino-compatible logger interface: pass `pino()` (or anything with these methods) as `logger`.
 * The default writes JSON lines to stderr at `warn` and above (`TASKLOOM_LOG_LEVEL` changes that).
 * Lines written under an active OpenTelemetry span carry its `trace_id` and `span_id`.
 */
import { isSpanContextValid, trace } from '@opentelemetry/api'
import { TaskloomError } from './errors.js'

export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  child?(bindings: object): Logger
  /** pino's level check: when present, taskloom skips building log fields for a disabled level. */
  isLevelEnabled?(level: string): boolean
}

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50, silent: Number.POSITIVE_INFINITY } as const
/** A level to log at and above; `silent` logs nothing. */
export type LogLevel = keyof typeof LEVELS
/** The environment variable that sets the log level when the code gives none. */
export const LOG_LEVEL_ENV = 'TASKLOOM_LOG_LEVEL'

/**
 * The level to use: `given` if set, else `TASKLOOM_LOG_LEVEL` (case-insensitive), else `fallback`.
 * A level that is not one of debug, info, warn, error, silent is an INVALID_OPTIONS error naming it.
 */
export function resolveLogLevel(given: string | undefined, fallback: LogLevel): LogLevel {
  const fromEnv = process.env[LOG_LEVEL_ENV]
  const raw =
    given ?? (fromEnv === undefined || fromEnv.trim() === '' ? undefined : fromEnv.trim().toLowerCase())
  if (raw === undefined) return fallback
  if (Object.hasOwn(LEVELS, raw)) return raw as LogLevel
  const where = given === undefined ? LOG_LEVEL_ENV : 'level'
  throw new TaskloomError(
    'INVALID_OPTIONS',
    `${where} must be one of ${Object.keys(LEVELS).join(', ')} (got ${JSON.stringify(raw)})`,
    { issues: [{ path: where, message: 'unknown log level' }] },
  )
}

/** `trace_id` and `span_id` of the active span (OpenTelemetry), or undefined outside one. */
export function traceFields(): { trace_id: string; span_id: string; trace_flags: string } | undefined {
  const sc = trace.getActiveSpan()?.spanContext()
  if (!sc || !isSpanContextValid(sc)) return undefined
  return {
    trace_id: sc.traceId,
    span_id: sc.spanId,
    trace_flags: (sc.traceFlags & 0xff).toString(16).padStart(2, '0'),
  }
}

/**
 * JSON lines with `timestamp`, `level`, `service`, the given fields, and `trace_id`/`span_id` under an
 * active span. Level: `level`, else `TASKLOOM_LOG_LEVEL`, else `warn`.
 */
export function createJsonLogger(
  options: { level?: LogLevel; service?: string; write?: (line: string) => void; bindings?: object } = {},
): Logger {
  const min = LEVELS[resolveLogLevel(options.level, 'warn')]
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'))
  const base = { service: options.service ?? 'taskloom', ...options.bindings }
  const log = (level: Exclude<LogLevel, 'silent'>) => (obj: object, msg?: string) => {
    if (LEVELS[level] < min) return
    const line = {
      timestamp: new Date().toISOString(),
      level,
      ...base,
      ...obj,
      ...traceFields(),
      message: msg,
    }
    write(JSON.stringify(line))
  }
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (bindings) => createJsonLogger({ ...options, bindings: { ...options.bindings, ...bindings } }),
    isLevelEnabled: (level) => (LEVELS[level as LogLevel] ?? 0) >= min,
  }
}

/** Whether `level` is on (true for a logger without `isLevelEnabled`). */
export function logEnabled(logger: Logger, level: LogLevel): boolean {
  return logger.isLevelEnabled ? logger.isLevelEnabled(level) : true
}

/**
 * Options for `pino(...)` that give the spec's log shape: `timestamp` (ISO 8601), `level` as a
 * name, `service`, and `message`, plus `trace_id`/`span_id` (a pino `mixin`) under an active span.
 * taskloom adds task_id, tenant_id, worker_id, duration_ms and retry_count where they apply.
 * Level: `level`, else `TASKLOOM_LOG_LEVEL`, else `info`.
 * @example
 * const logger = pino(pinoOptions({ service: 'billing-worker', level: 'info' }))
 * createQueue({ name: 'emails', redis, logger })
 */
export function pinoOptions(options: { service?: string; level?: LogLevel } = {}) {
  return {
    level: resolveLogLevel(options.level, 'info') as string,
    mixin: () => traceFields() ?? {},
    messageKey: 'message',
    base: { service: options.service ?? 'taskloom' },
    timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
    formatters: { level: (label: string) => ({ level: label }) },
  }
}

export function childLogger(logger: Logger, bindings: object): Logger {
  if (logger.child) return logger.child(bindings)
  const wrap = (fn: Logger['info']) => (obj: object, msg?: string) =>
    fn.call(logger, { ...bindings, ...obj }, msg)
  return {
    debug: wrap(logger.debug),
    info: wrap(logger.info),
    warn: wrap(logger.warn),
    error: wrap(logger.error),
    isLevelEnabled: logger.isLevelEnabled && ((level) => logger.isLevelEnabled!(level)),
  }
}
