import { expect } from 'vitest';
import { MkimgError } from '../../src/util/errors.js';

/** The MkimgError that `p` rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<MkimgError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(MkimgError);
    return e as MkimgError;
  }
  throw new Error('expected a rejection');
}
