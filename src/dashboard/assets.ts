/**
 * The prebuilt front end: `scripts/build-dashboard.mjs` bundles src/dashboard/client into
 * content-hashed files and a `manifest.json` naming them (dist/dashboard/assets). They are read
 * once and served from memory: hashed files cached for a year (`immutable`), the page itself never.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TaskloomError } from '../errors.js'

export interface Asset {
  body: string
  contentType: string
}

export interface Assets {
  /** Hashed file names of the entry script and style sheet. */
  script: string
  style: string
  files: Map<string, Asset>
}

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  map: 'application/json',
}

/** Where the shipped bundle is: beside the built entry (dist/), or dist/ when run from src/. */
function defaultDir(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  const candidates = [
    join(here, 'dashboard', 'assets'),
    join(here, '..', '..', 'dist', 'dashboard', 'assets'),
  ]
  return candidates.find((dir) => existsSync(join(dir, 'manifest.json'))) ?? candidates[0]!
}

export function loadAssets(dir = defaultDir()): Assets {
  const manifestPath = join(dir, 'manifest.json')
  if (!existsSync(manifestPath)) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      `the dashboard's front end is not built (no ${manifestPath}): run \`npm run build\``,
    )
  }
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    script: string
    style: string
    files: string[]
  }
  const files = new Map<string, Asset>()
  for (const name of manifest.files) {
    const ext = name.slice(name.lastIndexOf('.') + 1)
    files.set(name, { body: readFileSync(join(dir, name), 'utf8'), contentType: TYPES[ext] ?? 'text/plain' })
  }
  return { script: manifest.script, style: manifest.style, files }
}

const escapeAttr = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The one HTML page: no inline script or style, the mount path and title in meta tags. */
export function indexPage(assets: Assets, base: string, title: string): string {
  const b = escapeAttr(base)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<meta name="tl-base" content="${b}">
<title>${escapeAttr(title)}</title>
<link rel="icon" href="${b}/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${b}/assets/${escapeAttr(assets.style)}">
<script type="module" src="${b}/assets/${escapeAttr(assets.script)}"></script>
</head>
<body>
<div id="app"><noscript>The taskloom dashboard needs JavaScript.</noscript></div>
</body>
</html>
`
}
