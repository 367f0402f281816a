/** The `--name=123` arguments of a bench script, by name (others are ignored). */
export function numericArgs(
  argv: readonly string[] = process.argv.slice(2),
): Record<string, number | undefined> {
  return Object.fromEntries(
    argv
      .map((a) => /^--([a-z]+)=(\d+)$/.exec(a))
      .filter((m) => m !== null)
      .map((m) => [m[1]!, Number(m[2])]),
  )
}
