/** Every migration, in version order. Append new ones; never edit one that has shipped. */
import { initial } from './0001-initial.js'
import { fleet } from './0003-fleet.js'
import type { Migration } from './migration.js'

export type { Migration } from './migration.js'

// 0002 (schedules) lands from its own branch; versions are allocated, so order holds at merge.
export const MIGRATIONS: readonly Migration[] = [initial, fleet]
