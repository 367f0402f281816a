/**
 * How inputs and results become text for the broker and the store: JSON, optionally sealed with
 * AES-256-GCM before it leaves the process. The key id travels with each ciphertext, so keys rotate
 * without re-encrypting old data: add a new key, make it primary, keep the old ones for reading.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { TaskloomError } from '../errors.js'

export interface EncryptionOptions {
  /** Key id → 32-byte key (raw bytes, or base64 text). Ids: 1-64 letters, digits, '.', '_' or '-'. */
  keys: Record<string, Uint8Array | string>
  /** The key new data is encrypted with. */
  primaryKeyId: string
  /** Task names whose inputs and results are encrypted. Default: every task of the queue. */
  tasks?: readonly string[]
}

/** The sealed form: still a JSON value, so PostgreSQL can keep it as jsonb. */
interface Envelope {
  $tl: 'enc1'
  kid: string
  iv: string
  tag: string
  ct: string
}

export interface Codec {
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
  /** `decode` for readers: a value this queue cannot decrypt reads as `Sealed` instead of failing. */
  read(text: string): unknown
}

/**
 * What a read (`queue.get`, `queue.list`) shows for an input or result encrypted with a key this
 * queue does not hold: the key id, never the data. JSON-serialises as `{ "$encrypted": keyId }`.
 */
export class Sealed {
  constructor(readonly keyId: string) {}
  toJSON(): { $encrypted: string } {
    return { $encrypted: this.keyId }
  }
}

export function createCodec(queueName: string, encryption?: EncryptionOptions): Codec {
  const keys = encryption ? checkKeys(encryption) : undefined
  const sealed = encryption?.tasks ? new Set(encryption.tasks) : undefined
  const aad = Buffer.from(`taskloom:${queueName}`)
  const codec: Codec = {
    read(text) {
      try {
        return codec.decode(text)
      } catch (err) {
        const value: unknown = JSON.parse(text)
        if (isEnvelope(value)) return new Sealed(value.kid)
        throw err
      }
    },
    encode(value, taskName) {
      const json = toJson(value)
      if (!keys || !encryption || (sealed && !sealed.has(taskName))) return json
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', keys.get(encryption.primaryKeyId)!, iv).setAAD(aad)
      const ct = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()])
      const envelope: Envelope = {
        $tl: 'enc1',
        kid: encryption.primaryKeyId,
        iv: iv.toString('base64'),
        tag: cipher.getAuthTag().toString('base64'),
        ct: ct.toString('base64'),
      }
      return JSON.stringify(envelope)
    },
    decode(text) {
      const value: unknown = JSON.parse(text)
      if (!isEnvelope(value)) return value
      const key = keys?.get(value.kid)
      if (!key)
        throw new TaskloomError(
          'INVALID_OPTIONS',
          `no key ${value.kid} in the encryption key ring to decrypt with`,
        )
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(value.iv, 'base64')).setAAD(aad)
        decipher.setAuthTag(Buffer.from(value.tag, 'base64'))
        const json = Buffer.concat([decipher.update(Buffer.from(value.ct, 'base64')), decipher.final()])
        return JSON.parse(json.toString('utf8'))
      } catch (err) {
        throw new TaskloomError(
          'INTERNAL',
          `could not decrypt with key ${value.kid}: the data or the key is wrong`,
          {
            cause: err,
          },
        )
      }
    },
  }
  return codec
}

function toJson(value: unknown): string {
  try {
    return JSON.stringify(value === undefined ? null : value)
  } catch (err) {
    throw new TaskloomError('INVALID_INPUT', `value is not JSON-serialisable: ${(err as Error).message}`, {
      cause: err,
    })
  }
}

function isEnvelope(v: unknown): v is Envelope {
  return typeof v === 'object' && v !== null && (v as { $tl?: unknown }).$tl === 'enc1'
}

function checkKeys(options: EncryptionOptions): Map<string, Buffer> {
  const keys = new Map<string, Buffer>()
  for (const [id, raw] of Object.entries(options.keys ?? {})) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      throw new TaskloomError('INVALID_OPTIONS', `encryption key id ${JSON.stringify(id)} is invalid`)
    }
    const key = typeof raw === 'string' ? Buffer.from(raw, 'base64') : Buffer.from(raw)
    if (key.length !== 32) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        `encryption key ${id} must be 32 bytes (AES-256), got ${key.length}`,
      )
    }
    keys.set(id, key)
  }
  if (!keys.has(options.primaryKeyId)) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      `encryption.primaryKeyId ${options.primaryKeyId} is not in encryption.keys`,
    )
  }
  return keys
}
