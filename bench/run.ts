/**
 * `npm run bench`: taskloom and BullMQ side by side on the local Redis. See docs/benchmarks.md.
 *
 * src/ imports its Lua scripts as text. `npm run bench` already loads scripts/register-lua.mjs; the
 * same hook is registered here too so `npx tsx bench/run.ts` works alone (a second copy is a no-op).
 */
import { register } from 'node:module'

register('../scripts/lua-hooks.mjs', import.meta.url)
const { main } = await import('./main.js')
await main(process.argv.slice(2))
