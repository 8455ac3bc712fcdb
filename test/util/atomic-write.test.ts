import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeAtomicallyWith, writeFileAtomic, writeFileAtomicAsync } from '../../src/util/atomic-write.js';

describe('atomic write', () => {
  it('replaces the target and leaves no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-atomic-'));
    const p = join(dir, 'out');
    writeFileSync(p, 'old');
    writeFileAtomic(p, 'new');
    expect(readFileSync(p, 'utf8')).toBe('new');
    await writeFileAtomicAsync(p, 'newer');
    expect(readFileSync(p, 'utf8')).toBe('newer');
    expect(readdirSync(dir)).toEqual(['out']);
  });

  it('on failure keeps the old file and removes the temporary one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-atomic-'));
    const p = join(dir, 'out');
    writeFileSync(p, 'old');
    expect(() =>
      writeAtomicallyWith(p, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(readFileSync(p, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['out']);
  });
});
