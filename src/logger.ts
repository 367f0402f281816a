/**
 * A pino-compatible logger interface: pass `pino()` (or anything with these methods) as `logger`.
 * The default writes JSON lines to stderr at `warn` and above.
 */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  child?(bindings: object): Logger
  /** pino's level check: when present, taskloom skips building log fields for a disabled level. */
  isLevelEnabled?(level: string): boolean
}

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const
export type LogLevel = keyof typeof LEVELS

/** JSON lines with `timestamp`, `level`, `service` and the given fields. */
export function createJsonLogger(
  options: { level?: LogLevel; service?: string; write?: (line: string) => void; bindings?: object } = {},
): Logger {
  const min = LEVELS[options.level ?? 'warn']
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'))
  const base = { service: options.service ?? 'taskloom', ...options.bindings }
  const log = (level: LogLevel) => (obj: object, msg?: string) => {
    if (LEVELS[level] < min) return
    write(JSON.stringify({ timestamp: new Date().toISOString(), level, ...base, ...obj, message: msg }))
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
 * name, `service`, and `message`. taskloom adds task_id, tenant_id, worker_id, duration_ms and
 * retry_count where they apply.
 * @example
 * const logger = pino(pinoOptions({ service: 'billing-worker', level: 'info' }))
 * createQueue({ name: 'emails', redis, logger })
 */
export function pinoOptions(options: { service?: string; level?: LogLevel } = {}) {
  return {
    level: options.level ?? 'info',
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
