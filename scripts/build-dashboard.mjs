// Builds the dashboard's front end (src/dashboard/client) into content-hashed files and a manifest
// that the server reads: dist/dashboard/assets by default. `npm run build` runs it after tsup.
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const client = join(root, 'src', 'dashboard', 'client')

export async function buildDashboardClient(outdir = join(root, 'dist', 'dashboard', 'assets')) {
  const result = await build({
    entryPoints: [join(client, 'main.ts'), join(client, 'styles.css')],
    bundle: true,
    minify: true,
    format: 'esm',
    // CSS light-dark() (the themes) needs Chrome 123, Firefox 120, Safari 17.5.
    target: ['es2022', 'chrome123', 'firefox120', 'safari17.5'],
    write: false,
    outdir: 'out',
    legalComments: 'none',
  })
  rmSync(outdir, { recursive: true, force: true })
  mkdirSync(outdir, { recursive: true })
  const manifest = { script: '', style: '', files: [] }
  for (const file of result.outputFiles) {
    const ext = file.path.endsWith('.css') ? 'css' : 'js'
    const hash = createHash('sha256').update(file.contents).digest('hex').slice(0, 10)
    const name = `app.${hash}.${ext}`
    writeFileSync(join(outdir, name), file.contents)
    manifest[ext === 'css' ? 'style' : 'script'] = name
    manifest.files.push(name)
  }
  writeFileSync(join(outdir, 'favicon.svg'), readFileSync(join(client, 'favicon.svg')))
  manifest.files.push('favicon.svg')
  writeFileSync(join(outdir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  return { outdir, manifest }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { outdir, manifest } = await buildDashboardClient(process.argv[2])
  const { gzipSync } = await import('node:zlib')
  const sizes = manifest.files.map((f) => {
    const bytes = readFileSync(join(outdir, f))
    return `${f} ${bytes.length} B (${gzipSync(bytes).length} B gzipped)`
  })
  console.log(`dashboard client built in ${outdir}:\n  ${sizes.join('\n  ')}`)
}
