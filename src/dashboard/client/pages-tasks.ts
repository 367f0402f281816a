/** Task list (filters, find, cursor paging), task detail with actions, and the dead-letter queue. */
import { BASE, get, HttpError, post } from './api.js'
import { ago, badge, duration, h, num, replace, when } from './dom.js'
import type { Ctx, Page } from './main.js'
import { showError } from './main.js'

export interface TaskRow {
  task_id: string
  queue: string
  tenant_id: string
  name: string
  status: string
  priority: string
  created_at: string
  started_at: string | null
  completed_at: string | null
  duration_ms: number | null
  retry_count: number
  max_retries: number
  idempotency_key: string | null
  error: string | null
}
interface TaskPage {
  queue: string
  tasks: TaskRow[]
  total: number
  /** `total` counted up to a limit: at least this many match. */
  total_at_least?: boolean
  next_cursor: string | null
  unsupported?: string
}

const STATUSES = ['', 'pending', 'queued', 'processing', 'completed', 'failed', 'cancelled']
const taskHref = (t: { queue: string; task_id: string }) =>
  `${BASE}/tasks/${encodeURIComponent(t.queue)}/${encodeURIComponent(t.task_id)}`

function field(label: string, control: HTMLElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control)
}
function input(id: string, value: string, attrs: Record<string, string> = {}): HTMLInputElement {
  return h('input', { id, name: id, value, ...attrs }) as HTMLInputElement
}
function select(id: string, options: [string, string][], value: string): HTMLSelectElement {
  const el = h(
    'select',
    { id, name: id },
    options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)),
  )
  return el as HTMLSelectElement
}

function queueSelect(ctx: Ctx, id = 'queue'): HTMLSelectElement {
  const chosen = ctx.query.get('queue') ?? ctx.session.queues[0]?.name ?? ''
  return select(
    id,
    ctx.session.queues.map((q) => [q.name, q.name]),
    chosen,
  )
}

function taskTable(
  rows: TaskRow[],
  options: { select?: Set<string>; onSelect?: () => void } = {},
): HTMLElement {
  const { select: chosen, onSelect } = options
  return h(
    'table',
    { class: 'tasks' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        chosen ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Select')) : null,
        ['Task', 'Name', 'Status', 'Priority', 'Tenant', 'Created', 'Duration', 'Retries'].map((t) =>
          h('th', { scope: 'col' }, t),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((t) =>
        h(
          'tr',
          { 'data-task': t.task_id },
          chosen
            ? h(
                'td',
                {},
                h('input', {
                  type: 'checkbox',
                  'aria-label': `select ${t.task_id}`,
                  checked: chosen.has(t.task_id),
                  onchange: (e: Event) => {
                    if ((e.target as HTMLInputElement).checked) chosen.add(t.task_id)
                    else chosen.delete(t.task_id)
                    onSelect?.()
                  },
                }),
              )
            : null,
          h('td', {}, h('a', { href: taskHref(t), 'data-link': '', class: 'mono' }, t.task_id)),
          h('td', {}, t.name, t.error ? h('div', { class: 'sub err' }, t.error) : null),
          h('td', {}, badge(t.status)),
          h('td', {}, t.priority),
          h('td', {}, t.tenant_id),
          h('td', { title: when(t.created_at) }, ago(t.created_at)),
          h('td', {}, duration(t.duration_ms)),
          h('td', {}, `${t.retry_count} / ${t.max_retries}`),
        ),
      ),
    ),
  )
}

export function tasksPage(ctx: Ctx): Page {
  const q = ctx.query
  const operator = ctx.session.user?.tenant_id === null
  const controls = {
    queue: queueSelect(ctx),
    status: select(
      'status',
      STATUSES.map((s) => [s, s || 'any']),
      q.get('status') ?? '',
    ),
    name: input('name', q.get('name') ?? '', { placeholder: 'task name' }),
    tenant: operator ? input('tenant', q.get('tenant') ?? '', { placeholder: 'tenant id' }) : null,
    from: input('from', q.get('from') ?? '', { type: 'datetime-local' }),
    to: input('to', q.get('to') ?? '', { type: 'datetime-local' }),
    find: input('find', q.get('find') ?? '', { placeholder: 'task id or idempotency key', type: 'search' }),
  }
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e: Event) => {
        e.preventDefault()
        const next = new URLSearchParams()
        for (const [k, el] of Object.entries(controls)) if (el?.value) next.set(k, el.value)
        ctx.go(`/tasks?${next}`)
      },
    },
    field('Queue', controls.queue),
    field('Status', controls.status),
    field('Task name', controls.name),
    controls.tenant ? field('Tenant', controls.tenant) : null,
    field('Created from', controls.from),
    field('Created before', controls.to),
    field('Find', controls.find),
    h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Apply')),
  )
  const result = h('div', { class: 'table-wrap' })
  const summary = h('p', { class: 'sub', 'aria-live': 'polite' })
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' })
  const body = h('section', {}, h('h1', {}, 'Tasks'), form, summary, result, pager)
  return {
    title: 'Tasks',
    body,
    async load() {
      const params = new URLSearchParams(q)
      for (const k of ['from', 'to']) {
        const v = params.get(k)
        if (v) params.set(k, new Date(v).toISOString())
      }
      const page = await get<TaskPage>(`tasks?${params}`)
      if (page.unsupported) {
        replace(result, h('p', { class: 'note' }, page.unsupported))
        return
      }
      replace(
        summary,
        `${num(page.total)}${page.total_at_least ? '+' : ''} task(s) match`,
        q.get('cursor') ? ' · a later page' : '',
      )
      replace(
        result,
        page.tasks.length === 0 ? h('p', { class: 'empty' }, 'No tasks match.') : taskTable(page.tasks),
      )
      const first = new URLSearchParams(q)
      first.delete('cursor')
      const next = new URLSearchParams(q)
      if (page.next_cursor) next.set('cursor', page.next_cursor)
      replace(
        pager,
        q.get('cursor') ? h('a', { href: `${BASE}/tasks?${first}`, 'data-link': '' }, '« First page') : null,
        page.next_cursor
          ? h('a', { href: `${BASE}/tasks?${next}`, 'data-link': '', rel: 'next' }, 'Next page »')
          : null,
      )
    },
  }
}

interface Display {
  text?: string
  encrypted?: string
}
interface TaskDetail extends TaskRow {
  attempts: number
  timeout_ms: number
  worker_id: string | null
  lock_key: string | null
  scheduled_at: string
  input: Display
  result: Display | null
  error_detail: { name: string; message: string; code?: string; stack?: string } | null
  schedule: { id: string; scheduled_at: string } | null
  history: {
    attempt: number
    worker_id: string
    started_at: string
    duration_ms: number
    outcome: string
    error: { name: string; message: string }
  }[]
  can_cancel: boolean
  can_retry: boolean
}

function payload(title: string, d: Display | null): HTMLElement {
  return h(
    'section',
    { class: 'payload' },
    h('h2', {}, title),
    d === null
      ? h('p', { class: 'empty' }, 'None.')
      : d.encrypted !== undefined
        ? h(
            'p',
            { class: 'note' },
            `Encrypted with key ${d.encrypted}: this queue does not hold that key, so the dashboard cannot show it.`,
          )
        : h('pre', { tabindex: 0 }, d.text ?? ''),
  )
}

function curlFor(ctx: Ctx, t: TaskDetail): string {
  const rest = ctx.session.rest_api_url ?? `${location.origin}/api/v1`
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`
  return `curl -H "X-API-Key: $TASKLOOM_API_KEY" ${quote(`${rest}/tasks/${encodeURIComponent(t.task_id)}`)}`
}

export function taskPage(ctx: Ctx, queue: string, id: string): Page {
  const body = h('section', {})
  let detail: TaskDetail | undefined
  let last = ''
  const act = (what: 'cancel' | 'retry') => async () => {
    try {
      await post(`tasks/${encodeURIComponent(queue)}/${encodeURIComponent(id)}/${what}`)
      ctx.refresh()
    } catch (err) {
      showError(err)
    }
  }
  const render = (t: TaskDetail) => {
    const canAct = ctx.session.user?.can_act
    const copy = h('button', { type: 'button', class: 'ghost' }, 'Copy as curl')
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(curlFor(ctx, t))
        copy.textContent = 'Copied'
      } catch {
        copy.textContent = 'Copy failed: select the command below'
      }
    })
    const rows: [string, string | HTMLElement][] = [
      ['Status', badge(t.status)],
      ['Queue', t.queue],
      ['Tenant', t.tenant_id],
      ['Priority', t.priority],
      ['Created', when(t.created_at)],
      ['Runs at', when(t.scheduled_at)],
      ['Started', when(t.started_at)],
      ['Finished', when(t.completed_at)],
      ['Duration', duration(t.duration_ms)],
      ['Attempts', `${t.attempts} in this budget · ${t.retry_count} retries of ${t.max_retries}`],
      ['Timeout', duration(t.timeout_ms)],
      ['Worker', t.worker_id ?? '—'],
      ['Idempotency key', t.idempotency_key ?? '—'],
      ['Lock key', t.lock_key ?? '—'],
      ['Schedule', t.schedule ? `${t.schedule.id} · tick ${when(t.schedule.scheduled_at)}` : '—'],
      ['Fencing token', 'issued per claim, to the worker only (not kept in the task record)'],
      ['Trace id', "carried to the handler's span; not kept in the task record"],
    ]
    replace(
      body,
      h(
        'p',
        {},
        h('a', { href: `${BASE}/tasks?queue=${encodeURIComponent(queue)}`, 'data-link': '' }, '← Tasks'),
      ),
      h('h1', { class: 'mono' }, t.task_id),
      h('p', { class: 'sub' }, t.name),
      h(
        'div',
        { class: 'toolbar' },
        canAct && t.can_cancel
          ? h('button', { type: 'button', class: 'danger', onclick: act('cancel') }, 'Cancel task')
          : null,
        canAct && t.can_retry
          ? h('button', { type: 'button', onclick: act('retry') }, 'Retry from DLQ')
          : null,
        copy,
      ),
      h('pre', { class: 'curl', tabindex: 0 }, curlFor(ctx, t)),
      h(
        'dl',
        { class: 'facts' },
        rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
      ),
      payload('Input', t.input),
      payload('Result', t.result),
      h(
        'section',
        {},
        h('h2', {}, 'Error'),
        t.error_detail
          ? [
              h(
                'p',
                { class: 'err' },
                `${t.error_detail.name}: ${t.error_detail.message}`,
                t.error_detail.code ? ` (${t.error_detail.code})` : '',
              ),
              t.error_detail.stack ? h('pre', { tabindex: 0 }, t.error_detail.stack) : null,
            ]
          : h('p', { class: 'empty' }, 'None.'),
      ),
      h(
        'section',
        {},
        h('h2', {}, 'Failed attempts'),
        t.history.length === 0
          ? h('p', { class: 'empty' }, 'None.')
          : h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                {},
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['#', 'Worker', 'Started', 'Duration', 'Outcome', 'Error'].map((c) =>
                      h('th', { scope: 'col' }, c),
                    ),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  t.history.map((a) =>
                    h(
                      'tr',
                      {},
                      h('td', {}, String(a.attempt)),
                      h('td', {}, h('code', {}, a.worker_id)),
                      h('td', {}, when(a.started_at)),
                      h('td', {}, duration(a.duration_ms)),
                      h('td', {}, badge(a.outcome)),
                      h('td', {}, `${a.error.name}: ${a.error.message}`),
                    ),
                  ),
                ),
              ),
            ),
      ),
    )
  }
  return {
    title: `Task ${id}`,
    body,
    async load() {
      try {
        detail = await get<TaskDetail>(`tasks/${encodeURIComponent(queue)}/${encodeURIComponent(id)}`)
      } catch (err) {
        if (err instanceof HttpError && err.status === 404) {
          replace(
            body,
            h('h1', {}, 'Task not found'),
            h('p', {}, `No task ${id} in ${queue} that you may see.`),
          )
          return
        }
        throw err
      }
      // Unchanged since the last refresh: keep the page as it is (a selection, the copy button).
      const seen = JSON.stringify(detail)
      if (seen === last) return
      last = seen
      render(detail)
    },
  }
}

interface DeadGroup {
  name: string
  error_name: string
  error_message: string
  count: number
  last_at: string
}
interface DlqPage extends TaskPage {
  groups: DeadGroup[] | null
}

/** Asks to confirm an action on `count` tasks in a modal dialog; resolves true when confirmed. */
function confirmCount(text: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' }) as HTMLDialogElement
    const done = (ok: boolean) => {
      dialog.close()
      dialog.remove()
      resolve(ok)
    }
    dialog.append(
      h('h2', { id: 'confirm-title' }, 'Please confirm'),
      h('p', {}, text),
      h(
        'div',
        { class: 'toolbar' },
        h('button', { type: 'button', class: 'ghost', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', id: 'confirm-ok', onclick: () => done(true) }, 'Confirm'),
      ),
    )
    dialog.addEventListener('cancel', () => done(false))
    document.body.append(dialog)
    dialog.showModal()
  })
}

export function dlqPage(ctx: Ctx): Page {
  const chosen = new Set<string>()
  const queue = queueSelect(ctx, 'dlq-queue')
  queue.addEventListener('change', () => ctx.go(`/dlq?queue=${encodeURIComponent(queue.value)}`))
  const groups = h('div', { class: 'table-wrap' })
  const list = h('div', { class: 'table-wrap' })
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' })
  const selectedButton = h('button', { type: 'button', disabled: true }, 'Retry selected')
  const canAct = ctx.session.user?.can_act
  const updateSelected = () => {
    selectedButton.textContent = `Retry selected (${chosen.size})`
    ;(selectedButton as HTMLButtonElement).disabled = chosen.size === 0
  }
  const retry = async (body: Record<string, unknown>, count: number, what: string) => {
    if (
      !(await confirmCount(
        `Retry ${count} dead-lettered task(s) ${what}? Each goes back to its queue with a fresh attempt budget.`,
      ))
    )
      return
    try {
      const r = await post<{ retried: number }>('dlq/retry', { queue: queue.value, ...body, expect: count })
      chosen.clear()
      updateSelected()
      showNotice(`${r.retried} task(s) put back in the queue.`)
      ctx.refresh()
    } catch (err) {
      showError(err)
    }
  }
  selectedButton.addEventListener(
    'click',
    () => void retry({ ids: [...chosen] }, chosen.size, 'that you selected'),
  )
  const notice = h('p', { class: 'notice', role: 'status' })
  const showNotice = (text: string) => {
    notice.textContent = text
  }
  const body = h(
    'section',
    {},
    h('h1', {}, 'Dead-letter queue'),
    h(
      'div',
      { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: 'dlq-queue' }, 'Queue'), queue),
    ),
    notice,
    h('h2', {}, 'By task and error'),
    groups,
    h('h2', {}, 'Tasks'),
    canAct ? h('div', { class: 'toolbar' }, selectedButton) : null,
    list,
    pager,
  )
  return {
    title: 'Dead letters',
    body,
    async load() {
      const params = new URLSearchParams({ queue: queue.value })
      const cursor = ctx.query.get('cursor')
      if (cursor) params.set('cursor', cursor)
      const page = await get<DlqPage>(`dlq?${params}`)
      replace(
        groups,
        page.groups === null
          ? h('p', { class: 'note' }, 'Grouping needs the store: this queue runs Redis-only.')
          : page.groups.length === 0
            ? h('p', { class: 'empty' }, 'The dead-letter queue is empty.')
            : h(
                'table',
                {},
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['Task', 'Error', 'Tasks', 'Latest', ''].map((c) => h('th', { scope: 'col' }, c)),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  page.groups.map((g) =>
                    h(
                      'tr',
                      {},
                      h('td', {}, g.name),
                      h('td', { class: 'err' }, g.error_name ? `${g.error_name}: ${g.error_message}` : '—'),
                      h('td', {}, num(g.count)),
                      h('td', {}, ago(g.last_at)),
                      h(
                        'td',
                        { class: 'actions' },
                        canAct
                          ? h(
                              'button',
                              {
                                type: 'button',
                                onclick: () =>
                                  void retry(
                                    {
                                      group: {
                                        name: g.name,
                                        error_name: g.error_name,
                                        error_message: g.error_message,
                                      },
                                    },
                                    g.count,
                                    `of ${g.name} that failed with ${g.error_name || 'no error'}`,
                                  ),
                              },
                              `Retry all ${g.count}`,
                            )
                          : null,
                      ),
                    ),
                  ),
                ),
              ),
      )
      replace(
        list,
        page.tasks.length === 0
          ? h('p', { class: 'empty' }, 'No dead-lettered tasks.')
          : taskTable(page.tasks, canAct ? { select: chosen, onSelect: updateSelected } : {}),
      )
      updateSelected()
      const next = new URLSearchParams({ queue: queue.value })
      if (page.next_cursor) next.set('cursor', page.next_cursor)
      replace(
        pager,
        page.next_cursor ? h('a', { href: `${BASE}/dlq?${next}`, 'data-link': '' }, 'Next page »') : null,
      )
    },
  }
}
