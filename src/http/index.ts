/**
 * `taskloom/http`: the framework-free REST API core. Mount it with `taskloom/express`,
 * `taskloom/fastify` or `taskloom/node`.
 */
export { Api, type ApiRequest, type ApiResponse, createApi, openApiDocument } from './api.js'
export {
  type ApiKeyInfo,
  ApiKeys,
  type CreatedKey,
  type CreateKeyInput,
  isOperator,
  OPERATOR_TENANT,
  type OpenApiKeysOptions,
  openApiKeys,
  SCOPES,
  type Scope,
} from './api-keys.js'
export type { AuditAction, AuditEntry, AuditFilter, AuditRecord } from './audit.js'
export type { Mountable } from './mountable.js'
export type {
  ApiOptions,
  HttpMetrics,
  ScheduleInfoLike,
  ScheduleInputLike,
  SchedulesLike,
  WorkerInfoLike,
} from './options.js'
export { HttpProblem, PROBLEM_STATUS, type ProblemBody, type ProblemCode } from './problem.js'
export {
  TENANT_SCOPES,
  type TenantGrant,
  type TenantPatch,
  type TenantScope,
  type TenantSettings,
  Tenants,
} from './tenants.js'
