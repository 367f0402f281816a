/**
 * A full garbage collection before each timed section, so neither library pays for garbage the
 * previous phase (often the other library) left behind. `--expose-gc` set at run time only exposes
 * `gc` in contexts created afterwards, hence the new context.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as (() => void) | undefined

export function collectGarbage(): void {
  gc?.()
}
