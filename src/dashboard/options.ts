/** `createDashboard` options: which queues, who may look and act, what to hide. */
import type { Api, ApiRequest } from '../http/api.js'
import type { Logger } from '../logger.js'
import type { Queue } from '../queue/queue.js'
import type { TaskDefinition } from '../task/define-task.js'

/** Who is looking, as the dashboard sees them. */
export interface DashboardUser {
  /** Written to the audit log with each action (`details.user`). */
  id: string
  /** Shown in the header. Default: `id`. */
  name?: string
  /** The one tenant this user may see; absent: every tenant (an operator). */
  tenantId?: string
  /** May cancel, retry, and pause, resume or trigger schedules. Default false (read-only). */
  canAct?: boolean
}

/**
 * How people sign in. Either the REST API's keys: a key with the `dashboard:read` scope reads its
 * tenant, an `admin` key also acts, an operator key sees and acts on every tenant (the dashboard
 * uses `api`'s key store, tenant grants and audit log); or a callback that asks the host app who
 * sent a request (its own session cookie, SSO header…), answering null for nobody.
 */
export type DashboardAuth =
  | { apiKeys: Api }
  | { user: (req: ApiRequest) => DashboardUser | null | Promise<DashboardUser | null> }

export interface DashboardOptions {
  /** The queues to show. */
  queues: readonly Queue[]
  /** Required: who may look and act (see `DashboardAuth`). */
  auth: DashboardAuth
  /**
   * Field names (at any depth) or dotted paths from the root (`card.number`) whose values are
   * shown as `[redacted]` in inputs, results and schedule payloads. Default none.
   */
  redact?: readonly string[]
  /** Task definitions for "trigger now" when no worker registered them. Default: the registered ones. */
  tasks?: readonly TaskDefinition<any, any>[]
  /** Where the REST API is mounted, for "copy as curl" (e.g. 'https://jobs.example.com/api/v1'). */
  restApiUrl?: string
  /** The heading shown in the header. Default 'taskloom'. */
  title?: string
  /** How often the open page refreshes while visible, ms. Default 5000. */
  refreshMs?: number
  /**
   * Mark the sign-in cookie `Secure`. Default: yes, unless the request's host is loopback
   * (`localhost`, `127.0.0.1`, `[::1]`), where browsers allow plain http.
   */
  secureCookies?: boolean
  /** Largest request body, bytes. Default 65,536. */
  bodyLimit?: number
  /**
   * Where the built front end is (a folder holding `manifest.json`). Default: the one shipped in the
   * package (`dist/dashboard/assets`).
   */
  assetsDir?: string
  logger?: Logger
}
