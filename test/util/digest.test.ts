import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256File, sha256FileSyncOnly } from '../../src/util/digest.js';

const dir = mkdtempSync(join(tmpdir(), 'mkimg-digest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sha256FileSyncOnly', () => {
  it("gives sha256File's digest and size, for files of no bytes, one buffer, and several", async () => {
    for (const size of [0, 1, (1 << 20) - 1, 1 << 20, (3 << 20) + 17]) {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4093) data[i] = (i * 31) & 0xff;
      const path = join(dir, `f${size}`);
      writeFileSync(path, data);
      const expected = { hex: createHash('sha256').update(data).digest('hex'), size };
      expect(sha256FileSyncOnly(path)).toEqual(expected);
      expect(await sha256File(path)).toEqual(expected);
    }
  });
});
