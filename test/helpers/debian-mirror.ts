/**
 * Tests that need the real Debian archive use the mirror from the host's apt
 * configuration (never a host name written here) and are skipped, saying so,
 * when it does not answer.
 */
import { readAptSources } from '../../src/debian/mirrors.js';

export async function hostMirror(suite = 'bookworm'): Promise<string | undefined> {
  const entry = readAptSources('/').find((e) => e.suites.includes(suite));
  if (!entry) return undefined;
  try {
    const res = await fetch(`${entry.uri}/dists/${suite}/InRelease`, {
      method: 'HEAD',
      signal: AbortSignal.timeout(5000),
    });
    return res.ok ? entry.uri : undefined;
  } catch {
    return undefined;
  }
}
