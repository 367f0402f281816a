/**
 * Inputs, results and schedule payloads as the page shows them: pretty JSON text with the `redact`
 * option's fields replaced, or a note that the value is encrypted with a key this queue lacks.
 * The page puts the text in a text node; nothing here is HTML.
 */
import { Sealed } from '../queue/codec.js'

export type Redactor = (value: unknown) => unknown

export const REDACTED = '[redacted]'

/** A redactor for field names (any depth) and dotted paths from the root. */
export function createRedactor(fields: readonly string[] = []): Redactor {
  const names = new Set(fields.filter((f) => !f.includes('.')))
  const paths = new Set(fields.filter((f) => f.includes('.')))
  if (names.size === 0 && paths.size === 0) return (v) => v
  const walk = (value: unknown, path: string): unknown => {
    if (Array.isArray(value)) return value.map((v, i) => walk(v, path ? `${path}.${i}` : String(i)))
    if (value === null || typeof value !== 'object' || value instanceof Sealed) return value
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) {
      const at = path ? `${path}.${k}` : k
      out[k] = names.has(k) || paths.has(at) ? REDACTED : walk(v, at)
    }
    return out
  }
  return (value) => walk(value, '')
}

export type Display = { text: string } | { encrypted: string }

export function display(redact: Redactor, value: unknown): Display {
  if (value instanceof Sealed) return { encrypted: value.keyId }
  return { text: JSON.stringify(redact(value), null, 2) ?? 'null' }
}
