/** Signs in to a dashboard over HTTP as its page does: the CSRF cookie and token, then the key. */
export interface DashboardSession {
  /** Both cookies, for a `cookie` header. */
  cookie: string
  csrf: string
  /** Only the CSRF cookie (no session). */
  csrfCookie: string
  /** The session cookie as the server set it, attributes included. */
  setCookie: string
}

export async function signInOverHttp(base: string, key: string): Promise<DashboardSession> {
  const first = await fetch(`${base}_api/session`)
  const csrfCookie = first.headers.get('set-cookie')!.split(';')[0]!
  const { csrf } = (await first.json()) as { csrf: string }
  const login = await fetch(`${base}_api/login`, {
    method: 'POST',
    headers: { cookie: csrfCookie, 'x-csrf-token': csrf, 'content-type': 'application/json' },
    body: JSON.stringify({ key }),
  })
  if (login.status !== 200) throw new Error(`sign-in answered ${login.status}: ${await login.text()}`)
  const setCookie = login.headers.get('set-cookie')!
  return { cookie: `${csrfCookie}; ${setCookie.split(';')[0]}`, csrf, csrfCookie, setCookie }
}
