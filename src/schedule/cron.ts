/**
 * Cron expressions through cron-parser 5: five fields (minute first) or six (seconds first), in an
 * IANA time zone. A bad expression or zone is rejected at once with the parser's reason.
 */
import { CronExpressionParser } from 'cron-parser'
import { TaskloomError } from '../errors.js'

/** Throws INVALID_CRON with the parser's reason, or INVALID_OPTIONS for an unknown time zone. */
export function checkCron(cron: unknown, timezone: string, path = 'cron'): string {
  if (typeof cron !== 'string' || cron.trim().length === 0 || cron.length > 200) {
    throw new TaskloomError(
      'INVALID_CRON',
      `${path}: a cron expression must be a string of 1-200 characters`,
      {
        issues: [{ path, message: 'expected a cron expression such as "*/5 * * * *"' }],
      },
    )
  }
  const fields = cron.trim().split(/\s+/).length
  if (fields !== 5 && fields !== 6) {
    throw new TaskloomError(
      'INVALID_CRON',
      `${path}: invalid cron expression "${cron}": expected 5 fields (minute hour day month weekday) or 6 (seconds first), got ${fields}`,
      { issues: [{ path, message: `expected 5 or 6 fields, got ${fields}` }] },
    )
  }
  try {
    CronExpressionParser.parse(cron, { tz: timezone, currentDate: new Date() }).next()
  } catch (err) {
    const reason = (err as Error).message
    throw new TaskloomError('INVALID_CRON', `${path}: invalid cron expression "${cron}": ${reason}`, {
      issues: [{ path, message: reason }],
      cause: err,
    })
  }
  return cron.trim()
}

/** Throws INVALID_OPTIONS unless `timezone` is an IANA zone this runtime knows (or 'UTC'). */
export function checkTimezone(timezone: unknown, path = 'timezone'): string {
  if (typeof timezone === 'string' && timezone.length > 0 && timezone.length <= 100) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone })
      return timezone
    } catch {}
  }
  throw new TaskloomError('INVALID_OPTIONS', `${path}: unknown time zone ${JSON.stringify(timezone)}`, {
    issues: [{ path, message: 'expected an IANA time zone such as "UTC" or "Europe/Berlin"' }],
  })
}

/** The first tick strictly after `after` (epoch ms), or null when the expression has no more. */
export function nextTick(cron: string, timezone: string, after: number): number | null {
  try {
    return CronExpressionParser.parse(cron, { tz: timezone, currentDate: new Date(after) })
      .next()
      .getTime()
  } catch {
    return null
  }
}

/**
 * Ticks in [from, to] in order, at most `limit` of them; `from` itself counts when it is a tick.
 * `more` says whether ticks were left out.
 */
export function ticksBetween(
  cron: string,
  timezone: string,
  from: number,
  to: number,
  limit: number,
): { ticks: number[]; more: boolean } {
  const ticks: number[] = []
  const interval = CronExpressionParser.parse(cron, { tz: timezone, currentDate: new Date(from - 1) })
  for (;;) {
    let t: number
    try {
      t = interval.next().getTime()
    } catch {
      return { ticks, more: false }
    }
    if (t > to) return { ticks, more: false }
    if (ticks.length === limit) return { ticks, more: true }
    ticks.push(t)
  }
}
