/**
 * What the adapters (`taskloom/express`, `taskloom/fastify`, `taskloom/node`) mount: the REST API
 * (`createApi`) and the web dashboard (`createDashboard`) both answer requests through this shape.
 */
import type { ApiRequest, ApiResponse } from './api.js'
import type { ProblemCode } from './problem.js'

export interface Mountable {
  readonly options: { readonly bodyLimit: number }
  /** Called when mounted, so the handler opens what it needs before the first request. */
  openInBackground(): void
  handle(req: ApiRequest): Promise<ApiResponse>
  /** A problem response for errors an adapter meets before the handler (a body its framework refused). */
  problem(code: ProblemCode, detail: string, path: string, headers?: Record<string, string>): ApiResponse
}
