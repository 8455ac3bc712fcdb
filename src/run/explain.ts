import type { LaunchRecord } from './record.js';
import type { LaunchSpec } from './launch.js';
export async function explain(_rec: LaunchRecord, spec: LaunchSpec, _cacheDir: string): Promise<number> {
  const { launch } = await import('./launch.js');
  return launch(spec);
}
