/**
 * Just enough OpenPGP packet framing (RFC 9580 §4.2) to look at a detached
 * signature before handing it to openpgp.js: which packets it holds, and for
 * each signature packet its version, type and hash algorithm. This lets mkimg
 * name the exact reason it refuses a signature (v5/LibrePGP, text mode, SHA-1)
 * instead of passing on a library's generic parse error.
 */
import { MkimgError } from '../util/errors.js';

export interface RawPacket {
  tag: number;
  body: Uint8Array;
  offset: number;
}

export interface SignatureInfo {
  version: number;
  /** 0x00 binary document, 0x01 canonical text document, ... */
  sigType: number;
  pubkeyAlgo: number;
  hashAlgo: number;
}

export const HASH_NAMES: Record<number, string> = {
  1: 'MD5',
  2: 'SHA-1',
  3: 'RIPEMD-160',
  8: 'SHA-256',
  9: 'SHA-384',
  10: 'SHA-512',
  11: 'SHA-224',
  12: 'SHA3-256',
  14: 'SHA3-512',
};

/** Hashes mkimg accepts in a manifest signature: SHA-256 or stronger. */
export const ACCEPTED_HASHES = new Set([8, 9, 10, 12, 14]);

export const SIG_TYPE_NAMES: Record<number, string> = {
  0x00: 'binary document',
  0x01: 'canonical text document',
  0x02: 'standalone',
  0x10: 'generic certification',
  0x13: 'positive certification',
  0x18: 'subkey binding',
  0x1f: 'direct key',
  0x20: 'key revocation',
  0x28: 'subkey revocation',
  0x30: 'certification revocation',
};

export function splitPackets(data: Uint8Array, file: string): RawPacket[] {
  const out: RawPacket[] = [];
  let i = 0;
  const bad = (why: string): never => {
    throw new MkimgError('signature', `${file} is not an OpenPGP signature: ${why} at byte ${i}`, {
      hint: 'give an ASCII-armored detached signature (mkimg sign, gpg --detach-sign --armor, sq sign --signature-file)',
    });
  };
  while (i < data.length) {
    const start = i;
    const b0 = data[i++];
    if (!(b0 & 0x80)) bad('bad packet header');
    let tag: number;
    let len: number;
    if (b0 & 0x40) {
      tag = b0 & 0x3f;
      if (i >= data.length) bad('truncated packet header');
      const o1 = data[i++];
      if (o1 < 192) len = o1;
      else if (o1 < 224) {
        if (i >= data.length) bad('truncated packet header');
        len = ((o1 - 192) << 8) + data[i++] + 192;
      } else if (o1 === 255) {
        if (i + 4 > data.length) bad('truncated packet header');
        len = ((data[i] << 24) >>> 0) + (data[i + 1] << 16) + (data[i + 2] << 8) + data[i + 3];
        i += 4;
      } else {
        bad('partial-length packet (not allowed in a signature)');
      }
    } else {
      tag = (b0 >> 2) & 0x0f;
      const lt = b0 & 3;
      if (lt === 3) len = data.length - i;
      else {
        const n = lt === 0 ? 1 : lt === 1 ? 2 : 4;
        if (i + n > data.length) bad('truncated packet header');
        len = 0;
        for (let k = 0; k < n; k++) len = len * 256 + data[i + k];
        i += n;
      }
    }
    if (i + len! > data.length) bad(`packet of ${len!} bytes runs past the end`);
    out.push({ tag: tag!, body: data.subarray(i, i + len!), offset: start });
    i += len!;
  }
  return out;
}

export function signatureInfo(p: RawPacket): SignatureInfo {
  const b = p.body;
  const version = b[0];
  if (version === 3) {
    // v3: version, hashed-length(5), type, time(4), keyid(8), pubkey algo, hash algo
    return { version, sigType: b[2], pubkeyAlgo: b[15], hashAlgo: b[16] };
  }
  return { version, sigType: b[1], pubkeyAlgo: b[2], hashAlgo: b[3] };
}
