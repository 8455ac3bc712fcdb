import { describe, expect, it } from 'vitest';
import { isLoopbackHost, parseReference, parseRepository } from '../../src/registry/reference.js';
import { parseChallenges } from '../../src/registry/auth.js';
import { describeErrorBody } from '../../src/registry/client.js';

describe('references', () => {
  it('parses host, port, nested repos, tags and digests', () => {
    expect(parseReference('127.0.0.1:5000/app:1.0')).toEqual({
      registry: '127.0.0.1:5000',
      hostname: '127.0.0.1',
      repository: 'app',
      tag: '1.0',
      digest: undefined,
    });
    expect(parseReference('registry.example.net/team/sub/app')).toMatchObject({
      registry: 'registry.example.net',
      repository: 'team/sub/app',
      tag: undefined,
    });
    const d = 'sha256:' + 'a'.repeat(64);
    expect(parseReference(`localhost/app@${d}`)).toMatchObject({
      registry: 'localhost',
      repository: 'app',
      digest: d,
      tag: undefined,
    });
    expect(parseReference(`[::1]:5000/a/b:t@${d}`)).toMatchObject({
      hostname: '::1',
      registry: '[::1]:5000',
      repository: 'a/b',
      tag: 't',
      digest: d,
    });
  });

  it('rejects a missing host and malformed parts as usage errors', () => {
    for (const bad of [
      'app:1.0',
      'team/app',
      '',
      'http://x.io/a',
      'x.io/App',
      'x.io/a:bad tag',
      `x.io/a@sha256:abc`,
      'x.io/',
      'x.io/a//b',
    ]) {
      expect(() => parseReference(bad), bad).toThrow(expect.objectContaining({ kind: 'usage' }));
    }
    expect(() => parseReference('app:1.0')).toThrow(/no registry host/);
    expect(() => parseRepository('x.io/a:1')).toThrow(/without a tag/);
    expect(parseRepository('base', '127.0.0.1:5000')).toEqual({
      registry: '127.0.0.1:5000',
      hostname: '127.0.0.1',
      repository: 'base',
    });
  });

  it('knows loopback hosts', () => {
    expect(['127.0.0.1', '127.1.2.3', 'localhost', '::1'].every(isLoopbackHost)).toBe(true);
    expect(['128.0.0.1', '10.0.0.1', 'localhost.example', '127.0.0.256', 'registry.local'].some(isLoopbackHost)).toBe(
      false,
    );
  });
});

describe('challenges and error bodies', () => {
  it('parses Bearer and Basic challenges with quoted commas', () => {
    const c = parseChallenges(
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push", Basic realm="x"',
    );
    expect(c).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
      },
      { scheme: 'basic', params: { realm: 'x' } },
    ]);
    expect(parseChallenges('Basic realm=plain')).toEqual([{ scheme: 'basic', params: { realm: 'plain' } }]);
  });

  it('describes registry error bodies', () => {
    const body = Buffer.from(
      JSON.stringify({
        errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: 'sha256:ab' }],
      }),
    );
    expect(describeErrorBody(body)).toEqual({
      text: 'MANIFEST_BLOB_UNKNOWN: blob unknown to registry (sha256:ab)',
      codes: ['MANIFEST_BLOB_UNKNOWN'],
    });
    expect(describeErrorBody(Buffer.from('<html>oops</html>\n')).text).toBe('<html>oops</html>');
  });
});
