// Node module hooks: a `.lua` file imports as its source text, as tsup's text loader does at
// build time. Only needed to run TypeScript from source (tsx); the published build inlines them.
import { readFile } from 'node:fs/promises'

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.lua')) return nextLoad(url, context)
  const source = await readFile(new URL(url), 'utf8')
  return { format: 'module', source: `export default ${JSON.stringify(source)}`, shortCircuit: true }
}
