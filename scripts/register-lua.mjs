// `node --import tsx --import ./scripts/register-lua.mjs file.ts` runs taskloom from source.
import { register } from 'node:module'

register('./lua-hooks.mjs', import.meta.url)
