/**
 * What `createQueue({ redis })` accepts: a URL, or an ioredis client the application owns.
 */
import { Redis, type RedisOptions } from 'ioredis'

export type RedisInput = string | Redis

export interface RedisHandle {
  client: Redis
  /** A fresh connection for blocking commands (BZPOPMIN), always owned by us. */
  duplicate(): Redis
  /** Closes the client if we created it; a client passed in is left to its owner. */
  close(): Promise<void>
}

const defaults: RedisOptions = {
  // A queue must keep working across reconnects: commands wait for the connection to come back.
  maxRetriesPerRequest: null,
}

export function connectRedis(input: RedisInput): RedisHandle {
  const owned = typeof input === 'string'
  const client = owned ? quiet(new Redis(input, defaults)) : input
  return {
    client,
    duplicate: () => quiet(client.duplicate(defaults)),
    close: async () => {
      if (owned) await quit(client)
    },
  }
}

/**
 * Connection errors are retried by ioredis and surface on the commands that fail; without a
 * listener they would also be printed as "Unhandled error event" on every reconnect attempt.
 */
function quiet(client: Redis): Redis {
  client.on('error', () => {})
  return client
}

export async function quit(client: Redis): Promise<void> {
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
}
