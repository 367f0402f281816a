/**
 * `taskloom/dashboard`: a web dashboard for taskloom's queues, mounted with the REST API's adapters.
 * @example
 * import { createApi } from 'taskloom/http'
 * import { createDashboard } from 'taskloom/dashboard'
 * import { expressRouter } from 'taskloom/express'
 * const api = createApi({ queue })
 * app.use('/api/v1', expressRouter(api))
 * app.use('/admin/queues', expressRouter(createDashboard({ queues: [queue], auth: { apiKeys: api } })))
 */
import { Dashboard } from './dashboard.js'
import type { DashboardOptions } from './options.js'

export { CSP, Dashboard } from './dashboard.js'
export type { DashboardAuth, DashboardOptions, DashboardUser } from './options.js'
export { REDACTED } from './redact.js'

/** Creates the dashboard; mount it with `taskloom/express`, `taskloom/fastify` or `taskloom/node`. */
export function createDashboard(options: DashboardOptions): Dashboard {
  return new Dashboard(options)
}
