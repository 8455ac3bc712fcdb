/**
 * layerKey names a layer's bytes from its headers and its contents' sha256:
 * plans that write the same bytes have one key (wherever the content is read
 * from), anything that changes a byte changes it, and a plan whose content
 * digest is unknown, or is to be checked or recorded while read, has none.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LayerEntry, layerKey, planLayer, writeLayer } from '../../src/image/layer.js';
import { HashingSink } from '../../src/image/sink.js';

let work: string;
const MTIME = 1700000000;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-layer-key-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function file(dir: string, name: string, body: string): LayerEntry {
  const hostPath = join(work, `${dir}-${name}`);
  writeFileSync(hostPath, body);
  return {
    path: `/srv/${name}`,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: Buffer.byteLength(body),
    hostPath,
    sha256: createHash('sha256').update(body).digest('hex'),
  };
}

function entries(dir: string, body = 'hello\n'): LayerEntry[] {
  return [
    file(dir, 'a', body),
    file(dir, 'b', 'x'.repeat(1000)),
    { path: '/srv/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, linkTarget: 'a' },
    { path: '/srv/hard', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, size: 0, linkTarget: '/srv/b' },
    { path: '/srv/empty', type: 'file', mode: 0o600, uid: 1, gid: 2, size: 0, hostPath: '/nonexistent' },
  ];
}

const digest = (plan: ReturnType<typeof planLayer>) => {
  const sink = HashingSink.digestOnly();
  try {
    return writeLayer(plan, MTIME, sink).sha256;
  } finally {
    sink.close();
  }
};

describe('layerKey', () => {
  it('is one for plans that write the same bytes, from wherever their content is read', () => {
    const one = planLayer(entries('one'));
    const two = planLayer(entries('two'));
    expect(layerKey(one, MTIME)).toMatch(/^[0-9a-f]{64}$/);
    expect(layerKey(two, MTIME)).toBe(layerKey(one, MTIME));
    expect(digest(two)).toBe(digest(one));
  });

  it('changes with any header field, the time, or a content digest', () => {
    const base = layerKey(planLayer(entries('base')), MTIME);
    const changed = [
      layerKey(planLayer(entries('body', 'hellO\n')), MTIME),
      layerKey(planLayer(entries('base')), MTIME + 1),
      layerKey(planLayer(entries('base').map((e) => (e.path === '/srv/a' ? { ...e, mode: 0o755 } : e))), MTIME),
      layerKey(planLayer(entries('base').map((e) => (e.path === '/srv/link' ? { ...e, linkTarget: 'b' } : e))), MTIME),
      layerKey(
        planLayer(entries('base').map((e) => (e.path === '/srv/b' ? { ...e, capability: Buffer.from([1]) } : e))),
        MTIME,
      ),
    ];
    expect(new Set([base, ...changed]).size).toBe(changed.length + 1);
  });

  it('is undefined when a content digest is unknown, or checked or recorded while read', () => {
    const drop = (f: (e: LayerEntry) => LayerEntry) =>
      layerKey(planLayer(entries('none').map((e) => (e.path === '/srv/a' ? f(e) : e))), MTIME);
    expect(drop(({ sha256: _s, ...e }) => e)).toBeUndefined();
    expect(drop((e) => ({ ...e, verifySha256: e.sha256 }))).toBeUndefined();
    expect(drop((e) => ({ ...e, record: () => {} }))).toBeUndefined();
    expect(drop((e) => ({ ...e, content: () => Buffer.from('hello\n') }))).toBeUndefined();
  });
});
