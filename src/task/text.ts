/**
 * The one rule for text taskloom stores: valid Unicode without U+0000. PostgreSQL keeps neither a
 * NUL character (text and jsonb refuse it) nor a lone UTF-16 surrogate (half of a character, which
 * has no UTF-8 form), so both are refused where they come in, naming the field, instead of failing
 * deep in the store or being replaced by U+FFFD on the way. The same rule holds for the library
 * (`queue.submit`, schedules, API keys) and the REST API, which checks every string of a body and a
 * query before anything else reads it.
 */
import type { Issue } from '../errors.js'

/** A NUL, or a lone UTF-16 surrogate (one not part of a pair). The NUL is the point here. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is exactly what this refuses
const BAD_TEXT = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** What is wrong with `s`, or null when it is text taskloom can store. */
export function textFault(s: string): string | null {
  const m = BAD_TEXT.exec(s)
  if (!m) return null
  return m[0] === '\u0000'
    ? 'must not contain a NUL character (U+0000)'
    : 'must be valid Unicode text (it holds a lone surrogate)'
}

/** At most this many issues are reported for one value. */
const MAX_ISSUES = 20

/**
 * Deepest nesting of arrays and objects a value may have. Deeper values cannot be encoded
 * (JSON.stringify recurses) or stored (PostgreSQL's jsonb parser stops at its stack depth limit),
 * and no task needs them; they are refused with the text rule, in the same walk.
 */
export const MAX_DEPTH = 100

/**
 * Every string (and object key) in a JSON-like value that breaks the rule, named by its dotted path
 * under `where` (a key is named by the path of its value), and nesting past `MAX_DEPTH`. Iterative, so deep nesting cannot
 * overflow the stack; values it has seen once (a shared sub-object) are not walked again.
 */
export function textIssues(value: unknown, where: string): Issue[] {
  const issues: Issue[] = []
  const seen = new Set<object>()
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: where, depth: 0 }]
  while (stack.length > 0 && issues.length < MAX_ISSUES) {
    const { v, path, depth } = stack.pop()!
    if (typeof v === 'string') {
      const fault = textFault(v)
      if (fault) issues.push({ path: path || '(root)', message: fault })
      continue
    }
    if (typeof v !== 'object' || v === null || seen.has(v)) continue
    seen.add(v)
    if (depth >= MAX_DEPTH) {
      issues.push({ path: path || '(root)', message: `nested deeper than ${MAX_DEPTH} levels` })
      break
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--)
        stack.push({ v: v[i], path: join(path, String(i)), depth: depth + 1 })
      continue
    }
    if (v instanceof Date) continue
    const keys = Object.keys(v)
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!
      const fault = textFault(key)
      if (fault) {
        issues.push({ path: join(path, JSON.stringify(key)), message: `field name ${fault}` })
        continue
      }
      stack.push({ v: (v as Record<string, unknown>)[key], path: join(path, key), depth: depth + 1 })
    }
  }
  return issues
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key)
