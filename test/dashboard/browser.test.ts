/**
 * The dashboard in a real Chromium (Debian's, driven by playwright-core) against real Redis and
 * PostgreSQL with seeded data: every page opens (light and dark, screenshots into docs/dashboard/),
 * passes axe-core without serious or critical violations, filters, opens a task, retries dead
 * letters until they complete, pauses and resumes a schedule, keeps a tenant's key to its tenant,
 * shows an HTML payload as text; and the server refuses requests without a session or CSRF token.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CSP } from '../../src/dashboard/index.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { signInOverHttp } from './sign-in.js'
import { type DashboardStack, PREFIX, startDashboardStack } from './stack.js'

const ready = (await hasRedis()) && (await hasPostgres())
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')
const SHOTS = 'docs/dashboard'

let stack: DashboardStack

async function signIn(key: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await stack.browser.newPage({ viewport })
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(String(e)))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) errors.push(m.text())
  })
  ;(page as Page & { errors: string[] }).errors = errors
  await page.goto(stack.url)
  await page.fill('#key', key)
  await page.click('button[type=submit]')
  await page.waitForSelector('header.top')
  return page
}

async function open(page: Page, path: string, ready: string): Promise<void> {
  await page.goto(`${stack.url}${path.replace(/^\//, '')}`)
  await page.waitForSelector(ready)
}

/** axe-core run in the page (evaluate bypasses the CSP, which blocks injected script tags). */
async function axeViolations(page: Page): Promise<string[]> {
  await page.evaluate(axeSource)
  // A string, run in the page (the test's TypeScript has no DOM types).
  const result = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
    r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    })))`)) as { id: string; impact: string; targets: string[] }[]
  return result
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.targets.join(', ')}`)
}

async function setTheme(page: Page, theme: 'light' | 'dark'): Promise<void> {
  await page.evaluate(`localStorage.setItem('tl-theme', ${JSON.stringify(theme)})`)
}

describe.skipIf(!ready)('dashboard in Chromium', () => {
  beforeAll(async () => {
    stack = await startDashboardStack()
  }, 90_000)
  afterAll(async () => {
    await stack?.close()
  })

  it('answers nothing without a session, and a POST without the CSRF token is refused', async () => {
    const page = await fetch(`${stack.url}`)
    expect(page.headers.get('content-security-policy')).toBe(CSP)
    const html = await page.text()
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/)
    expect(html).not.toMatch(/<style|style=/)
    expect((await fetch(`${stack.url}_api/overview`)).status).toBe(401)

    // Sign in through the API, as the page does, to hold a session cookie and the CSRF token.
    const { cookie, csrf, setCookie: session } = await signInOverHttp(stack.url, stack.keys.operator)
    expect(session).toMatch(/HttpOnly/)
    expect(session).toMatch(/SameSite=Strict/)
    expect(session).toMatch(new RegExp(`Path=${PREFIX}`))
    expect((await fetch(`${stack.url}_api/overview`, { headers: { cookie } })).status).toBe(200)

    const { tasks } = (await (
      await fetch(`${stack.url}_api/tasks?status=pending`, { headers: { cookie } })
    ).json()) as { tasks: { task_id: string }[] }
    const target = `${stack.url}_api/tasks/${stack.queue.name}/${tasks[0]!.task_id}/cancel`
    const json = { 'content-type': 'application/json' }
    const noToken = await fetch(target, { method: 'POST', headers: { cookie, ...json }, body: '{}' })
    expect(noToken.status).toBe(403)
    const wrongToken = await fetch(target, {
      method: 'POST',
      headers: { cookie, ...json, 'x-csrf-token': 'forged' },
      body: '{}',
    })
    expect(wrongToken.status).toBe(403)
    const crossSite = await fetch(target, {
      method: 'POST',
      headers: { cookie, ...json, 'x-csrf-token': csrf, origin: 'https://evil.example' },
      body: '{}',
    })
    expect(crossSite.status).toBe(403)
    const form = await fetch(target, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrf, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1',
    })
    expect(form.status).toBe(415)
    // Nothing was cancelled by the refused requests.
    expect((await stack.queue.get(tasks[0]!.task_id))!.status).toBe('pending')
  })

  it('refuses a key without the dashboard:read scope at sign-in', async () => {
    const page = await stack.browser.newPage()
    await page.goto(stack.url)
    await page.fill('#key', stack.keys.noDashboard)
    await page.click('button[type=submit]')
    await expect.poll(() => page.textContent('.login .error')).toMatch(/lacks the dashboard:read/)
    await page.close()
  })

  it('opens every page in light and dark with no serious accessibility violations', async () => {
    const page = await signIn(stack.keys.operator)
    const pages: [string, string, string][] = [
      ['overview', '/', '.card .stats'],
      ['tasks', '/tasks', 'table.tasks'],
      ['task', `/tasks/${stack.queue.name}/${stack.xssTaskId}`, 'dl.facts'],
      ['dlq', '/dlq', 'table.tasks'],
      ['schedules', '/schedules', 'tr[data-schedule]'],
      ['workers', '/workers', 'td code'],
      ['tenants', '/tenants', 'td strong'],
    ]
    for (const theme of ['light', 'dark'] as const) {
      await setTheme(page, theme)
      for (const [name, path, ready] of pages) {
        await open(page, path, ready)
        expect(await page.evaluate('document.documentElement.dataset.theme')).toBe(theme)
        expect(await axeViolations(page), `${name} (${theme})`).toEqual([])
        await page.screenshot({ path: `${SHOTS}/${name}-${theme}.png`, fullPage: true })
      }
    }
    // A phone.
    await page.setViewportSize({ width: 390, height: 844 })
    await setTheme(page, 'light')
    await open(page, '/', '.card .stats')
    await page.screenshot({ path: `${SHOTS}/overview-phone.png`, fullPage: true })
    const login = await stack.browser.newPage({ viewport: { width: 1280, height: 700 } })
    await login.goto(stack.url)
    await login.waitForSelector('#key')
    expect(await axeViolations(login)).toEqual([])
    await login.screenshot({ path: `${SHOTS}/login-light.png` })
    await login.close()
    expect((page as Page & { errors: string[] }).errors).toEqual([])
    await page.close()
  }, 120_000)

  it('filters the task list, finds by idempotency key, opens a task, and the back button returns', async () => {
    const page = await signIn(stack.keys.operator)
    await open(page, '/tasks', 'table.tasks')
    await page.selectOption('#status', 'failed')
    await page.fill('#name', 'charge-card')
    await page.click('form.filters button[type=submit]')
    await page.waitForURL(/status=failed/)
    await page.waitForSelector('table.tasks')
    const statuses = await page.$$eval('table.tasks tbody tr td:nth-child(3)', (tds) =>
      tds.map((t) => t.textContent),
    )
    expect(statuses.length).toBe(6)
    expect(new Set(statuses)).toEqual(new Set(['failed']))

    await page.fill('#find', 'welcome-3')
    await page.selectOption('#status', '')
    await page.fill('#name', '')
    await page.click('form.filters button[type=submit]')
    await page.waitForURL(/find=welcome-3/)
    await expect.poll(() => page.$$eval('table.tasks tbody tr', (r) => r.length)).toBe(1)

    const listUrl = page.url()
    await page.click('table.tasks tbody tr a')
    await page.waitForSelector('dl.facts')
    expect(await page.textContent('dl.facts')).toContain('welcome-3')
    await page.goBack()
    await page.waitForSelector('table.tasks')
    expect(page.url()).toBe(listUrl)
    await page.close()
  })

  it('shows an HTML payload as text and hides redacted fields', async () => {
    const page = await signIn(stack.keys.operator)
    await open(page, `/tasks/${stack.queue.name}/${stack.xssTaskId}`, 'section.payload pre')
    const shown = await page.textContent('section.payload pre')
    expect(shown).toContain('<script>document.body.dataset.xss=2</script>')
    expect(shown).toContain('<img src=x onerror=')
    expect(await page.evaluate('document.body.dataset.xss')).toBeUndefined()
    expect(await page.$$('img[src="x"]')).toHaveLength(0)

    const { tasks } = await stack.queue.list({ name: 'charge-card', limit: 1 })
    await open(page, `/tasks/${stack.queue.name}/${tasks[0]!.id}`, 'section.payload pre')
    const input = await page.textContent('section.payload pre')
    expect(input).toContain('"number": "[redacted]"')
    expect(input).not.toMatch(/4[01]{3}0{6}/)
    await page.close()
  })

  it('retries a group of dead-lettered tasks after confirming the count, and they complete', async () => {
    stack.fixCharges()
    const done = await stack.queue.list({ name: 'charge-card', status: 'completed' })
    const page = await signIn(stack.keys.operator)
    await open(page, `/dlq?queue=${stack.queue.name}`, 'table.tasks')
    const expired = page.locator('tr', { hasText: 'card declined: expired' }).locator('button')
    await expect.poll(() => expired.textContent()).toBe('Retry all 4')
    await expired.click()
    await expect.poll(() => page.textContent('dialog.confirm')).toContain('Retry 4 dead-lettered task(s)')
    await page.click('#confirm-ok')
    await expect.poll(() => page.textContent('.notice')).toContain('4 task(s) put back')
    await expect
      .poll(async () => (await stack.queue.list({ name: 'charge-card', status: 'completed' })).total, {
        timeout: 10_000,
      })
      .toBe(done.total + 4)
    // The task's page shows it completed, and the audit log names who retried it.
    const { tasks } = await stack.queue.list({ name: 'charge-card', status: 'completed', limit: 1 })
    await open(page, `/tasks/${stack.queue.name}/${tasks[0]!.id}`, 'dl.facts')
    await expect.poll(() => page.textContent('dl.facts dd .badge')).toBe('completed')
    const audit = await stack.api.audit()
    const entries = await audit.list({ action: 'tasks.retry_all' })
    expect(entries[0]!.details).toMatchObject({ retried: 4, via: 'dashboard' })
    expect(entries[0]!.keyId).not.toBeNull()
    await page.close()
  })

  it('pauses and resumes a schedule, and triggers it now', async () => {
    const page = await signIn(stack.keys.operator)
    await open(page, '/schedules', 'tr[data-schedule]')
    const row = page.locator('tr[data-schedule="nightly-report"]')
    await row.getByRole('button', { name: 'Pause' }).click()
    await expect.poll(() => row.locator('.badge-paused').count()).toBe(1)
    expect((await stack.queue.schedules.get('nightly-report'))!.paused).toBe(true)
    await row.getByRole('button', { name: 'Resume' }).click()
    await expect.poll(() => row.locator('.badge-active').count()).toBe(1)
    expect((await stack.queue.schedules.get('nightly-report'))!.paused).toBe(false)
    const before = (await stack.queue.list({ name: 'render-report' })).total
    await row.getByRole('button', { name: 'Trigger now' }).click()
    await expect.poll(async () => (await stack.queue.list({ name: 'render-report' })).total).toBe(before + 1)
    const actions = (await (await stack.api.audit()).list({})).map((e) => e.action)
    expect(actions).toEqual(expect.arrayContaining(['schedule.pause', 'schedule.resume', 'schedule.trigger']))
    await page.close()
  })

  it("keeps a tenant's key to its tenant, read-only", async () => {
    const page = await signIn(stack.keys.acmeViewer)
    expect(await page.textContent('header .user')).toContain('tenant acme')
    await open(page, '/tasks', 'table.tasks')
    const tenants = await page.$$eval('table.tasks tbody tr td:nth-child(5)', (tds) =>
      tds.map((t) => t.textContent),
    )
    expect(tenants.length).toBeGreaterThan(0)
    expect(new Set(tenants)).toEqual(new Set(['acme']))
    expect(await page.$('#tenant')).toBeNull()
    // Another tenant's task by its URL: not found.
    const { tasks } = await stack.queue.list({ tenantId: 'globex', limit: 1 })
    await open(page, `/tasks/${stack.queue.name}/${tasks[0]!.id}`, 'h1')
    expect(await page.textContent('h1')).toBe('Task not found')
    // Read-only: no action buttons, and the server refuses one anyway.
    await open(page, '/dlq', '.table-wrap')
    expect(await page.$$('button:has-text("Retry")')).toHaveLength(0)
    const refused = await page.evaluate(
      async ([base, queue]) => {
        const s = (await (await fetch(`${base}_api/session`)).json()) as { csrf: string }
        const r = await fetch(`${base}_api/dlq/retry`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf },
          body: JSON.stringify({ queue, expect: 0 }),
        })
        return r.status
      },
      [stack.url, stack.queue.name],
    )
    expect(refused).toBe(403)
    await open(page, '/workers', 'p.note')
    expect(await page.textContent('p.note')).toContain('only the operator')
    await page.close()
  })

  it('refreshes while visible and says so', async () => {
    const page = await signIn(stack.keys.operator)
    await open(page, '/', '.card .stats')
    await expect.poll(() => page.textContent('.live')).toMatch(/^Live/)
    await page.close()
  })
})
