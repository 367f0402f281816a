// `npm run openapi`: writes docs/openapi.json from the API's zod schemas (a test fails when the
// committed file is out of date). `npm run openapi -- --check` only compares.
import { readFile, writeFile } from 'node:fs/promises'
import { openApiDocument } from '../src/http/index.js'

const file = new URL('../docs/openapi.json', import.meta.url)
const text = `${JSON.stringify(openApiDocument(), null, 2)}\n`
if (process.argv.includes('--check')) {
  const committed = await readFile(file, 'utf8').catch(() => '')
  if (committed !== text) {
    console.error('docs/openapi.json is out of date: run `npm run openapi`')
    process.exit(1)
  }
  console.log('docs/openapi.json is up to date')
} else {
  await writeFile(file, text)
  console.log('wrote docs/openapi.json')
}
