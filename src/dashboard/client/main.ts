/**
 * The dashboard's client: a tiny router over the History API (every page has a URL; back and
 * forward work), a layout with navigation, theme switch and live indicator, and the pages. Pages
 * refresh every `refresh_ms` while the tab is visible and stop while it is hidden.
 */
import { BASE, get, HttpError, type Session, setCsrf } from './api.js'
import { h, replace } from './dom.js'
import { loginPage, overviewPage, schedulesPage, tenantsPage, workersPage } from './pages.js'
import { dlqPage, taskPage, tasksPage } from './pages-tasks.js'

export interface Page {
  title: string
  body: HTMLElement
  /** Reloads the page's data (live refresh calls it). */
  load(): Promise<void>
  /** False for pages that should not refresh by themselves (a form being filled). */
  live?: boolean
}

export interface Ctx {
  session: Session
  path: string
  query: URLSearchParams
  go(to: string): void
  refresh(): void
}

const ROUTES: [RegExp, (ctx: Ctx, m: RegExpMatchArray) => Page][] = [
  [/^\/$/, (c) => overviewPage(c)],
  [/^\/tasks$/, (c) => tasksPage(c)],
  [
    /^\/tasks\/([^/]+)\/([^/]+)$/,
    (c, m) => taskPage(c, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!)),
  ],
  [/^\/dlq$/, (c) => dlqPage(c)],
  [/^\/schedules$/, (c) => schedulesPage(c)],
  [/^\/workers$/, (c) => workersPage(c)],
  [/^\/tenants$/, (c) => tenantsPage(c)],
]

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/tasks', 'Tasks'],
  ['/dlq', 'Dead letters'],
  ['/schedules', 'Schedules'],
  ['/workers', 'Workers'],
  ['/tenants', 'Tenants'],
]

const root = document.getElementById('app')!
let session: Session
let current: Page | undefined
let timer: number | undefined
const live = h('span', { class: 'live', role: 'status', 'aria-live': 'polite' })
const main = h('main', { id: 'main' })
const nav = h('nav', { 'aria-label': 'Sections' })

function theme(): string {
  return localStorage.getItem('tl-theme') ?? 'auto'
}
function applyTheme(t: string): void {
  document.documentElement.dataset.theme = t
}

function link(to: string, text: string): HTMLElement {
  return h('a', { href: BASE + to, 'data-link': '' }, text)
}

function layout(): void {
  const themeButton = h('button', { type: 'button', class: 'ghost', id: 'theme' }, '')
  const label = () => {
    themeButton.textContent = `Theme: ${theme()}`
  }
  label()
  themeButton.addEventListener('click', () => {
    const next = { auto: 'light', light: 'dark', dark: 'auto' }[theme()] ?? 'auto'
    localStorage.setItem('tl-theme', next)
    applyTheme(next)
    label()
  })
  const user = session.user
  const signOut =
    user && session.sign_in === 'api-key'
      ? h(
          'button',
          {
            type: 'button',
            class: 'ghost',
            onclick: async () => {
              const { post } = await import('./api.js')
              await post('logout')
              location.href = `${BASE}/`
            },
          },
          'Sign out',
        )
      : null
  replace(
    root,
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: `${BASE}/`, 'data-link': '' }, session.title),
      nav,
      h(
        'div',
        { class: 'who' },
        live,
        user
          ? h(
              'span',
              { class: 'user' },
              user.name,
              user.tenant_id ? ` · tenant ${user.tenant_id}` : ' · all tenants',
              user.can_act ? '' : ' · read-only',
            )
          : null,
        themeButton,
        signOut,
      ),
    ),
    main,
  )
}

function renderNav(path: string): void {
  replace(
    nav,
    h(
      'ul',
      {},
      NAV.map(([to, text]) => {
        const a = link(to, text)
        const active = to === '/' ? path === '/' : path.startsWith(to)
        if (active) a.setAttribute('aria-current', 'page')
        return h('li', {}, a)
      }),
    ),
  )
}

function setLive(state: 'on' | 'paused' | 'error' | 'off', text: string): void {
  live.className = `live live-${state}`
  live.textContent = text
}

async function tick(): Promise<void> {
  if (!current || document.visibilityState !== 'visible' || current.live === false) return
  try {
    await current.load()
    setLive('on', `Live · every ${Math.round(session.refresh_ms / 1000)} s`)
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) return void route()
    setLive('error', 'Live · update failed')
  }
}

function schedule(): void {
  window.clearInterval(timer)
  timer = undefined
  if (document.visibilityState !== 'visible') {
    setLive('paused', 'Paused · tab hidden')
    return
  }
  if (current?.live === false) {
    setLive('off', 'Not refreshing')
    return
  }
  setLive('on', `Live · every ${Math.round(session.refresh_ms / 1000)} s`)
  timer = window.setInterval(() => void tick(), session.refresh_ms)
}

function relativePath(): string {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname
  return p === '' ? '/' : p
}

async function route(): Promise<void> {
  session = await get<Session>('session')
  setCsrf(session.csrf)
  applyTheme(theme())
  if (!session.user) {
    replace(root, h('main', { id: 'main', class: 'narrow' }, loginPage(session).body))
    document.title = `Sign in · ${session.title}`
    return
  }
  if (!root.querySelector('header.top')) layout()
  const path = relativePath()
  renderNav(path)
  const ctx: Ctx = {
    session,
    path,
    query: new URLSearchParams(location.search),
    go,
    refresh: () => void current?.load().catch(showError),
  }
  const found = ROUTES.map(([re, make]) => [path.match(re), make] as const).find(([m]) => m)
  current = found ? found[1](ctx, found[0]!) : notFound()
  document.title = `${current.title} · ${session.title}`
  replace(main, current.body)
  main.focus({ preventScroll: true })
  try {
    await current.load()
  } catch (err) {
    showError(err)
  }
  schedule()
}

function notFound(): Page {
  return {
    title: 'Not found',
    body: h('section', {}, h('h1', {}, 'No such page'), link('/', 'Back to the overview')),
    load: async () => {},
  }
}

export function showError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err)
  const box = h('p', { class: 'error', role: 'alert' }, message)
  main.prepend(box)
  setTimeout(() => box.remove(), 8000)
}

function go(to: string): void {
  history.pushState(null, '', BASE + to)
  void route()
}

document.addEventListener('click', (e) => {
  const a = (e.target as Element | null)?.closest?.('a[data-link]') as HTMLAnchorElement | null
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return
  e.preventDefault()
  history.pushState(null, '', a.href)
  void route()
})
window.addEventListener('popstate', () => void route())
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') void tick()
  schedule()
})
main.tabIndex = -1
void route().catch((err) => replace(root, h('p', { class: 'error', role: 'alert' }, String(err))))
