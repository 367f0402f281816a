/** Requests to the dashboard's own JSON endpoints (same origin, under the mount path). */
export const BASE = document.querySelector<HTMLMetaElement>('meta[name="tl-base"]')?.content ?? ''

export interface Session {
  user: { id: string; name: string; tenant_id: string | null; can_act: boolean } | null
  sign_in: 'api-key' | 'host'
  csrf: string
  title: string
  refresh_ms: number
  rest_api_url: string | null
  queues: { name: string; mode: string }[]
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: { errors?: { path: string; message: string }[] } = {},
  ) {
    super(message)
  }
}

let csrf = ''
export function setCsrf(token: string): void {
  csrf = token
}

async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${BASE}/_api/${path}`, {
    method,
    credentials: 'same-origin',
    headers: {
      accept: 'application/json',
      ...(method === 'POST' ? { 'content-type': 'application/json', 'x-csrf-token': csrf } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const data = (await res.json().catch(() => ({}))) as Record<string, unknown>
  if (!res.ok) throw new HttpError(res.status, String(data.detail ?? res.statusText), data)
  return data as T
}

export const get = <T>(path: string) => send<T>('GET', path)
export const post = <T>(path: string, body: unknown = {}) => send<T>('POST', path, body)
