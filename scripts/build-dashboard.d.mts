/** Builds the dashboard's front end; see build-dashboard.mjs. */
export function buildDashboardClient(outdir?: string): Promise<{
  outdir: string
  manifest: { script: string; style: string; files: string[] }
}>
