/** Every migration, in version order. Append new ones; never edit one that has shipped. */
import { initial } from './0001-initial.js'
import { schedules } from './0002-schedules.js'
import { fleet } from './0003-fleet.js'
import { httpApi } from './0004-http-api.js'
import { leanTaskIndexes } from './0005-lean-task-indexes.js'
import { tenants } from './0006-tenants.js'
import { fences } from './0007-fences.js'
import { dependencies } from './0009-dependencies.js'
import { taskOutput } from './0010-task-output.js'
import { flowPauses } from './0011-flow-pauses.js'
import type { Migration } from './migration.js'

export type { Migration } from './migration.js'

export const MIGRATIONS: readonly Migration[] = [
  initial,
  schedules,
  fleet,
  httpApi,
  leanTaskIndexes,
  tenants,
  fences,
  dependencies,
  taskOutput,
  flowPauses,
]
