/**
 * OpenSSL's subject-name hash (X509_NAME_hash_ex, the "new" hash since
 * OpenSSL 1.0), which names the <hash>.N links `openssl rehash` makes in
 * /etc/ssl/certs so CApath lookups find a certificate by its subject. Pure:
 * a DER reader, the canonical name encoding, SHA-1.
 *
 * Canonical encoding (OpenSSL x509_name_canon): for each RDN, a DER SET OF
 * the RDN's attributes, each re-encoded as SEQUENCE { OID, value } where a
 * string value of a "canonicalizable" type (UTF8, BMP, Universal, Printable,
 * T61, IA5, Visible) is converted to UTF-8, stripped of leading and trailing
 * ASCII whitespace, internal ASCII whitespace runs collapsed to one space,
 * ASCII letters lower-cased, and tagged UTF8String; other values are kept.
 * The RDN encodings are concatenated (no outer SEQUENCE). The hash is the
 * first four bytes of SHA-1 of that, read little-endian, as %08x.
 */
import { createHash, X509Certificate } from 'node:crypto';

interface Tlv {
  tag: number;
  /** Offset of the first content byte. */
  start: number;
  end: number;
  /** The whole TLV (header + content). */
  raw: Buffer;
}

function readTlv(buf: Buffer, off: number): Tlv {
  const tag = buf[off];
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: multi-byte tags are not supported');
  let p = off + 1;
  let len = buf[p++];
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++];
  }
  const end = p + len;
  if (end > buf.length) throw new Error('DER: truncated');
  return { tag, start: p, end, raw: buf.subarray(off, end) };
}

function children(buf: Buffer, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = t.start; p < t.end; ) {
    const c = readTlv(buf, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

const UTF8 = 12;
const PRINTABLE = 19;
const T61 = 20;
const IA5 = 22;
const UNIVERSAL = 28;
const BMP = 30;
const VISIBLE = 26;
const CANON_TYPES = new Set([UTF8, BMP, UNIVERSAL, PRINTABLE, T61, IA5, VISIBLE]);

function toUtf8(tag: number, content: Buffer): Buffer {
  switch (tag) {
    case UTF8:
      return content;
    case BMP: {
      let s = '';
      for (let i = 0; i + 1 < content.length; i += 2) s += String.fromCharCode(content.readUInt16BE(i));
      return Buffer.from(s, 'utf8');
    }
    case UNIVERSAL: {
      let s = '';
      for (let i = 0; i + 3 < content.length; i += 4) s += String.fromCodePoint(content.readUInt32BE(i));
      return Buffer.from(s, 'utf8');
    }
    default:
      // Printable, IA5, Visible, T61: one byte per character (OpenSSL treats them as Latin-1)
      return Buffer.from(content.toString('latin1'), 'utf8');
  }
}

const isSpace = (b: number): boolean => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/** OpenSSL asn1_string_canon on UTF-8 bytes. */
function canonText(u: Buffer): Buffer {
  let from = 0;
  let len = u.length;
  while (len > 0 && isSpace(u[from])) {
    from++;
    len--;
  }
  while (len > 0 && isSpace(u[from + len - 1])) len--;
  const out: number[] = [];
  let i = 0;
  while (i < len) {
    const c = u[from];
    if (c >= 0x80) {
      out.push(c);
      from++;
      i++;
    } else if (isSpace(c)) {
      out.push(0x20);
      do {
        from++;
        i++;
      } while (isSpace(u[from]));
    } else {
      out.push(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
      from++;
      i++;
    }
  }
  return Buffer.from(out);
}

function derCompare(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  const c = Buffer.compare(a.subarray(0, n), b.subarray(0, n));
  return c !== 0 ? c : a.length - b.length;
}

/** The canonical encoding of a DER Name (the SEQUENCE TLV). */
export function canonicalName(der: Buffer, name: Tlv): Buffer {
  const parts: Buffer[] = [];
  for (const rdn of children(der, name)) {
    const attrs = children(der, rdn).map((atv) => {
      const [oid, value] = children(der, atv);
      const content = der.subarray(value.start, value.end);
      const v = CANON_TYPES.has(value.tag) ? tlv(UTF8, canonText(toUtf8(value.tag, content))) : value.raw;
      return tlv(0x30, Buffer.concat([oid.raw, v]));
    });
    attrs.sort(derCompare);
    parts.push(tlv(0x31, Buffer.concat(attrs)));
  }
  return Buffer.concat(parts);
}

/** The subject Name TLV of a DER certificate. */
function subjectOf(der: Buffer): Tlv {
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0];
  const f = children(der, tbs);
  const i = f[0].tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  // serialNumber, signature, issuer, validity, subject
  return f[i + 4];
}

/** `openssl x509 -subject_hash` of a DER certificate, as 8 lower-case hex digits. */
export function subjectHash(der: Buffer): string {
  const md = createHash('sha1')
    .update(canonicalName(der, subjectOf(der)))
    .digest();
  return md.readUInt32LE(0).toString(16).padStart(8, '0');
}

/** SHA-1 fingerprint of a DER certificate (how rehash spots duplicates). */
export function fingerprint(der: Buffer): string {
  return createHash('sha1').update(der).digest('hex');
}

/**
 * The DER of a PEM file's certificate when the file holds exactly one
 * certificate (what `openssl rehash` requires), else undefined.
 */
export function singleCertificate(pem: Buffer): Buffer | undefined {
  const text = pem.toString('latin1');
  const blocks =
    text.match(/-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----[\s\S]*?-----END (?:X509 |TRUSTED )?CERTIFICATE-----/g) ??
    [];
  if (blocks.length !== 1 || /-----BEGIN X509 CRL-----/.test(text)) return undefined;
  if (/TRUSTED CERTIFICATE/.test(blocks[0])) return undefined; // an OpenSSL "trusted" cert: not handled here
  try {
    return new X509Certificate(blocks[0]).raw;
  } catch {
    return undefined;
  }
}
