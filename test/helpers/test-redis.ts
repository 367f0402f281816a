/**
 * The Redis the shared suites run against: the shared server at REDIS_URL, or, in the `cluster`
 * test project (TASKLOOM_TEST_REDIS=cluster, see vitest.config.ts), the private cluster its global
 * setup started, as `{ cluster: [seed URLs] }`.
 */
import { inject } from 'vitest'
import type { RedisInput } from '../../src/broker/redis/connection.js'
import { REDIS_URL } from './services.js'

/** True in the `cluster` test project. */
export const onCluster = process.env.TASKLOOM_TEST_REDIS === 'cluster'

/** What the suites pass as `createQueue({ redis })`. */
export const TEST_REDIS: RedisInput = onCluster ? { cluster: inject('clusterSeeds') } : REDIS_URL
