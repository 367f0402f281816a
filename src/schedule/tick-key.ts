/**
 * The idempotency key of one (schedule, tick): `schedule:<id>:<tick ms>`. The tick time makes the
 * task unique (one task per tick however many schedulers fire it), and the key tells a worker which
 * schedule and tick started the task (`ctx.schedule`). Submits may not use the prefix.
 */
export const SCHEDULE_KEY_PREFIX = 'schedule:'

export function tickKey(scheduleId: string, tick: number): string {
  return `${SCHEDULE_KEY_PREFIX}${scheduleId}:${tick}`
}

/** The schedule and tick a tick key names; undefined for any other key (or none). */
export function scheduleOfKey(key: string | undefined): { id: string; scheduledAt: Date } | undefined {
  if (key === undefined || !key.startsWith(SCHEDULE_KEY_PREFIX)) return undefined
  const sep = key.lastIndexOf(':')
  const tick = Number(key.slice(sep + 1))
  const id = key.slice(SCHEDULE_KEY_PREFIX.length, sep)
  if (sep < SCHEDULE_KEY_PREFIX.length || id.length === 0 || !Number.isSafeInteger(tick)) return undefined
  return { id, scheduledAt: new Date(tick) }
}
