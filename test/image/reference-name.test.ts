import { describe, expect, it } from 'vitest';
import { qualifiedReference } from '../../src/oci/model.js';

describe('io.containerd.image.name: Docker reference normalization', () => {
  it('puts unqualified names on docker.io (library/ for one component), leaves registry names alone', () => {
    expect(qualifiedReference('python', '1.0')).toBe('docker.io/library/python:1.0');
    expect(qualifiedReference('mkimg-examples/python', '1.0')).toBe('docker.io/mkimg-examples/python:1.0');
    expect(qualifiedReference('a/b/c', 'x')).toBe('docker.io/a/b/c:x');
    expect(qualifiedReference('registry.example.invalid/team/app', '2')).toBe('registry.example.invalid/team/app:2');
    expect(qualifiedReference('localhost/app', 'latest')).toBe('localhost/app:latest');
    expect(qualifiedReference('127.0.0.1:5000/app', 'v1')).toBe('127.0.0.1:5000/app:v1');
    // a lone component is a repository even with a dot in it (Docker's rule needs a "/")
    expect(qualifiedReference('my.app', '1')).toBe('docker.io/library/my.app:1');
  });
});
