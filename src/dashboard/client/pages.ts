/** Overview, schedules, workers, tenants and sign-in pages. */
import { get, post, type Session } from './api.js'
import { type Bucket, failureChart, meter, throughputChart } from './charts.js'
import { ago, badge, duration, h, num, replace, when } from './dom.js'
import type { Ctx, Page } from './main.js'
import { showError } from './main.js'

interface Snapshot {
  history: boolean
  ready: Record<string, number> | null
  readyTotal: number
  delayed: number
  processing: number
  dead: number
  workersAlive: number
}
interface QueueView {
  name: string
  mode: string
  snapshot: Snapshot | null
  oldest_ready_age_ms: number | null
  activity: Bucket[] | null
}

const MODES: Record<string, string> = {
  embedded: 'Embedded (in-process broker, PGlite)',
  durable: 'Durable (Redis + PostgreSQL)',
  'redis-only': 'Redis-only (no history)',
}

function stat(label: string, value: string, hint?: string): HTMLElement {
  return h(
    'div',
    { class: 'stat' },
    h('dt', {}, label),
    h('dd', {}, value),
    hint ? h('small', {}, hint) : null,
  )
}

export function overviewPage(_ctx: Ctx): Page {
  const body = h('section', { 'aria-labelledby': 'h-overview' })
  const list = h('div', { class: 'cards' })
  replace(body, h('h1', { id: 'h-overview' }, 'Overview'), list)
  return {
    title: 'Overview',
    body,
    async load() {
      const data = await get<{ queues: QueueView[]; tenant_id: string | null }>('overview')
      replace(
        list,
        data.queues.map((q) => {
          const s = q.snapshot
          const head = h(
            'header',
            { class: 'card-head' },
            h('h2', {}, q.name),
            badge(MODES[q.mode] ?? q.mode, q.mode),
          )
          if (!s) {
            return h(
              'article',
              { class: 'card' },
              head,
              h(
                'p',
                { class: 'note' },
                'This queue runs Redis-only: it keeps no per-tenant record, so a tenant view has no numbers here.',
              ),
            )
          }
          const priorities = s.ready
            ? h(
                'table',
                { class: 'mini' },
                h('caption', {}, 'Ready by priority'),
                h(
                  'tbody',
                  {},
                  Object.entries(s.ready).map(([p, n]) =>
                    h('tr', {}, h('th', { scope: 'row' }, p), h('td', {}, num(n))),
                  ),
                ),
              )
            : h(
                'p',
                { class: 'note' },
                'Per-priority depth counts the whole queue: shown to the operator only.',
              )
          const charts = q.activity
            ? h('div', { class: 'charts' }, throughputChart(q.activity), failureChart(q.activity))
            : h(
                'p',
                { class: 'note' },
                'Redis-only mode keeps no history of finished tasks: no throughput or failure charts.',
              )
          return h(
            'article',
            { class: 'card' },
            head,
            h(
              'dl',
              { class: 'stats' },
              stat('Ready', num(s.readyTotal)),
              stat('Delayed', num(s.delayed)),
              stat('Processing', num(s.processing)),
              stat('Dead', num(s.dead)),
              stat('Oldest ready', q.oldest_ready_age_ms === null ? '—' : duration(q.oldest_ready_age_ms)),
              stat('Workers alive', num(s.workersAlive)),
            ),
            h('div', { class: 'split' }, priorities, charts),
            h(
              'p',
              { class: 'links' },
              h(
                'a',
                { href: `${base()}/tasks?queue=${encodeURIComponent(q.name)}`, 'data-link': '' },
                'Tasks',
              ),
              ' · ',
              h(
                'a',
                { href: `${base()}/dlq?queue=${encodeURIComponent(q.name)}`, 'data-link': '' },
                'Dead letters',
              ),
            ),
          )
        }),
      )
    },
  }
}

function base(): string {
  return document.querySelector<HTMLMetaElement>('meta[name="tl-base"]')?.content ?? ''
}

interface ScheduleView {
  schedule_id: string
  queue: string
  name: string
  cron: string
  timezone: string
  misfire: string
  paused: boolean
  tenant_id: string | null
  next_runs: string[]
  last_run_at: string | null
  last_run: { task_id: string; status: string } | null
}

export function schedulesPage(ctx: Ctx): Page {
  const table = h('div', { class: 'table-wrap' })
  const notes = h('div')
  const body = h('section', {}, h('h1', {}, 'Schedules'), notes, table)
  const act = (s: ScheduleView, op: string) => async () => {
    try {
      await post(`schedules/${encodeURIComponent(s.queue)}/${encodeURIComponent(s.schedule_id)}/${op}`)
      ctx.refresh()
    } catch (err) {
      showError(err)
    }
  }
  return {
    title: 'Schedules',
    body,
    async load() {
      const data = await get<{ schedules: ScheduleView[]; unsupported: string[] }>('schedules')
      replace(
        notes,
        data.unsupported.length > 0
          ? h(
              'p',
              { class: 'note' },
              `Schedules live in the store: ${data.unsupported.join(', ')} runs Redis-only and has none.`,
            )
          : null,
      )
      const canAct = ctx.session.user?.can_act
      replace(
        table,
        data.schedules.length === 0
          ? h('p', { class: 'empty' }, 'No schedules.')
          : h(
              'table',
              {},
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Schedule', 'Task', 'Cron', 'Next runs', 'Last run', 'Misfire', 'State', ''].map((t) =>
                    h('th', { scope: 'col' }, t),
                  ),
                ),
              ),
              h(
                'tbody',
                {},
                data.schedules.map((s) =>
                  h(
                    'tr',
                    { 'data-schedule': s.schedule_id },
                    h(
                      'td',
                      {},
                      h('strong', {}, s.schedule_id),
                      h('div', { class: 'sub' }, s.queue, s.tenant_id ? ` · ${s.tenant_id}` : ''),
                    ),
                    h('td', {}, s.name),
                    h('td', {}, h('code', {}, s.cron), h('div', { class: 'sub' }, s.timezone)),
                    h('td', {}, s.next_runs.length ? s.next_runs.map((n) => h('div', {}, when(n))) : '—'),
                    h(
                      'td',
                      {},
                      s.last_run_at ? when(s.last_run_at) : '—',
                      s.last_run
                        ? h(
                            'div',
                            {},
                            h(
                              'a',
                              {
                                href: `${base()}/tasks/${encodeURIComponent(s.queue)}/${encodeURIComponent(s.last_run.task_id)}`,
                                'data-link': '',
                              },
                              badge(s.last_run.status),
                            ),
                          )
                        : null,
                    ),
                    h('td', {}, s.misfire),
                    h('td', {}, s.paused ? badge('paused') : badge('active')),
                    h(
                      'td',
                      { class: 'actions' },
                      canAct
                        ? [
                            s.paused
                              ? h('button', { type: 'button', onclick: act(s, 'resume') }, 'Resume')
                              : h('button', { type: 'button', onclick: act(s, 'pause') }, 'Pause'),
                            h(
                              'button',
                              { type: 'button', class: 'ghost', onclick: act(s, 'trigger') },
                              'Trigger now',
                            ),
                          ]
                        : null,
                    ),
                  ),
                ),
              ),
            ),
      )
    },
  }
}

interface WorkerView {
  worker_id: string
  queue: string
  status: string
  hostname: string
  pid: number
  concurrency: number
  tasks_in_hand: number
  tasks_processed: number
  utilisation: number
  last_heartbeat: string
  started_at: string
}

export function workersPage(_ctx: Ctx): Page {
  const table = h('div', { class: 'table-wrap' })
  const body = h('section', {}, h('h1', {}, 'Workers'), table)
  return {
    title: 'Workers',
    body,
    async load() {
      const data = await get<{ workers: WorkerView[] | null; reason?: string }>('workers')
      if (!data.workers) return replace(table, h('p', { class: 'note' }, data.reason ?? ''))
      replace(
        table,
        data.workers.length === 0
          ? h('p', { class: 'empty' }, 'No worker has sent a heartbeat lately.')
          : h(
              'table',
              {},
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Worker', 'Host', 'Status', 'Utilisation', 'In hand', 'Processed', 'Last heartbeat'].map(
                    (t) => h('th', { scope: 'col' }, t),
                  ),
                ),
              ),
              h(
                'tbody',
                {},
                data.workers.map((w) =>
                  h(
                    'tr',
                    {},
                    h('td', {}, h('code', {}, w.worker_id), h('div', { class: 'sub' }, w.queue)),
                    h('td', {}, `${w.hostname} · pid ${w.pid}`),
                    h('td', {}, badge(w.status.toLowerCase())),
                    h(
                      'td',
                      {},
                      meter(w.utilisation, `utilisation of ${w.worker_id}`),
                      ` ${Math.round(w.utilisation * 100)} % of ${w.concurrency}`,
                    ),
                    h('td', {}, num(w.tasks_in_hand)),
                    h('td', {}, num(w.tasks_processed)),
                    h('td', {}, ago(w.last_heartbeat)),
                  ),
                ),
              ),
            ),
      )
    },
  }
}

interface TenantView {
  tenant_id: string
  rate_limit: number | null
  monthly_quota: number | null
  period: string
  submitted_this_period: number | null
  rate_limited_24h: number | null
  tasks: Record<string, number>
}

export function tenantsPage(_ctx: Ctx): Page {
  const table = h('div', { class: 'table-wrap' })
  const notes = h('div')
  const body = h('section', {}, h('h1', {}, 'Tenants'), notes, table)
  return {
    title: 'Tenants',
    body,
    async load() {
      const data = await get<{ tenants: TenantView[]; note: string | null }>('tenants')
      replace(notes, data.note ? h('p', { class: 'note' }, data.note) : null)
      replace(
        table,
        data.tenants.length === 0
          ? h('p', { class: 'empty' }, 'No tenants.')
          : h(
              'table',
              {},
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Tenant', 'Quota this month', 'Rate limit', 'Rate-limited (24 h)', 'Tasks'].map((t) =>
                    h('th', { scope: 'col' }, t),
                  ),
                ),
              ),
              h(
                'tbody',
                {},
                data.tenants.map((t) => {
                  const used = t.submitted_this_period
                  const quota =
                    t.monthly_quota === null
                      ? `${num(used)} · unlimited`
                      : [
                          meter((used ?? 0) / t.monthly_quota, `quota used by ${t.tenant_id}`),
                          ` ${num(used)} / ${num(t.monthly_quota)}`,
                        ]
                  return h(
                    'tr',
                    {},
                    h('td', {}, h('strong', {}, t.tenant_id)),
                    h('td', {}, quota),
                    h('td', {}, t.rate_limit === null ? '—' : `${num(t.rate_limit)} / min`),
                    h('td', {}, num(t.rate_limited_24h)),
                    h(
                      'td',
                      { class: 'counts' },
                      Object.entries(t.tasks)
                        .filter(([, n]) => n > 0)
                        .map(([s, n]) => h('span', {}, badge(s), ` ${num(n)}`)),
                    ),
                  )
                }),
              ),
            ),
      )
    },
  }
}

export function loginPage(session: Session): Page {
  const error = h('p', { class: 'error', role: 'alert', hidden: true })
  const input = h('input', {
    id: 'key',
    name: 'key',
    type: 'password',
    autocomplete: 'off',
    required: true,
    placeholder: 'tlk_…',
  }) as HTMLInputElement
  const form = h(
    'form',
    {
      class: 'login',
      onsubmit: async (e: Event) => {
        e.preventDefault()
        try {
          await post('login', { key: input.value })
          location.reload()
        } catch (err) {
          error.hidden = false
          error.textContent = err instanceof Error ? err.message : String(err)
        }
      },
    },
    h('h1', {}, session.title),
    session.sign_in === 'api-key'
      ? [
          h('label', { for: 'key' }, 'API key'),
          input,
          h(
            'p',
            { class: 'sub' },
            'A key with the dashboard:read scope reads its tenant; admin keys also act; operator keys see every tenant.',
          ),
          h('button', { type: 'submit' }, 'Sign in'),
        ]
      : h('p', {}, 'Sign in to the application first, then reload this page.'),
    error,
  )
  return { title: 'Sign in', body: form, load: async () => {} }
}
