/**
 * Just enough ELF to find what the kernel and the dynamic loader open without
 * the traced program asking for it by name: PT_INTERP, DT_NEEDED, DT_RPATH and
 * DT_RUNPATH. Little-endian ELF32/ELF64; anything else is "not ELF" here.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/**
 * A file to sniff, or null when it cannot be opened (then it is neither ELF
 * nor a script). Synchronous reads behind the async shape: the keep set
 * sniffs every kept file (thousands), and a thread-pool round trip per
 * header read cost more than the read itself.
 */
interface Sniffed {
  stat(): Promise<{ size: number }>;
  read(b: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

async function openOrNull(hostPath: string): Promise<Sniffed | null> {
  let fd: number;
  try {
    fd = openSync(hostPath, 'r');
  } catch {
    return null;
  }
  return {
    stat: async () => ({ size: fstatSync(fd).size }),
    read: async (b, off, len, pos) => ({ bytesRead: readSync(fd, b, off, len, pos) }),
    close: async () => closeSync(fd),
  };
}

export interface ElfInfo {
  class: 32 | 64;
  machine: number;
  interp?: string;
  needed: string[];
  rpath: string[];
  runpath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

/** Parse a file; null when it is not a little-endian ELF file or is malformed. */
export async function readElf(hostPath: string): Promise<ElfInfo | null> {
  const fh = await openOrNull(hostPath);
  if (fh === null) return null;
  try {
    const size = (await fh.stat()).size;
    const read = async (off: number, len: number): Promise<Buffer | null> => {
      if (off < 0 || len < 0 || off + len > size) return null;
      const b = Buffer.alloc(len);
      const { bytesRead } = await fh.read(b, 0, len, off);
      return bytesRead === len ? b : null;
    };
    const h = await read(0, 64);
    if (!h || h.readUInt32BE(0) !== 0x7f454c46 || h[5] !== 1) return null;
    const is64 = h[4] === 2;
    if (!is64 && h[4] !== 1) return null;
    const machine = h.readUInt16LE(18);
    const phoff = is64 ? Number(h.readBigUInt64LE(0x20)) : h.readUInt32LE(0x1c);
    const phentsize = h.readUInt16LE(is64 ? 0x36 : 0x2a);
    const phnum = h.readUInt16LE(is64 ? 0x38 : 0x2c);
    if (phnum === 0 || phentsize < (is64 ? 56 : 32) || phnum > 4096)
      return { class: is64 ? 64 : 32, machine, needed: [], rpath: [], runpath: [] };
    const ph = await read(phoff, phentsize * phnum);
    if (!ph) return null;
    const loads: { off: number; vaddr: number; filesz: number }[] = [];
    let interp: string | undefined;
    let dyn: { off: number; size: number } | undefined;
    for (let i = 0; i < phnum; i++) {
      const b = i * phentsize;
      const type = ph.readUInt32LE(b);
      const off = is64 ? Number(ph.readBigUInt64LE(b + 8)) : ph.readUInt32LE(b + 4);
      const vaddr = is64 ? Number(ph.readBigUInt64LE(b + 16)) : ph.readUInt32LE(b + 8);
      const filesz = is64 ? Number(ph.readBigUInt64LE(b + 32)) : ph.readUInt32LE(b + 16);
      if (type === PT_LOAD) loads.push({ off, vaddr, filesz });
      else if (type === PT_DYNAMIC) dyn = { off, size: filesz };
      else if (type === PT_INTERP) {
        const s = await read(off, Math.min(filesz, 4096));
        if (s) interp = s.toString('latin1').split('\0')[0];
      }
    }
    const info: ElfInfo = { class: is64 ? 64 : 32, machine, interp, needed: [], rpath: [], runpath: [] };
    if (!dyn) return info;
    const d = await read(dyn.off, Math.min(dyn.size, 1 << 20));
    if (!d) return info;
    const esz = is64 ? 16 : 8;
    const tags: [number, number][] = [];
    let strtab: number | undefined;
    for (let o = 0; o + esz <= d.length; o += esz) {
      const tag = is64 ? Number(d.readBigInt64LE(o)) : d.readInt32LE(o);
      const val = is64 ? Number(d.readBigUInt64LE(o + 8)) : d.readUInt32LE(o + 4);
      if (tag === 0) break;
      if (tag === DT_STRTAB) strtab = val;
      else if (tag === DT_NEEDED || tag === DT_RPATH || tag === DT_RUNPATH) tags.push([tag, val]);
    }
    if (strtab === undefined) return info;
    const seg = loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
    const strOff = seg ? strtab - seg.vaddr + seg.off : strtab;
    const str = async (idx: number): Promise<string> => {
      const s = await read(strOff + idx, Math.min(4096, size - (strOff + idx)));
      return s ? s.toString('latin1').split('\0')[0] : '';
    };
    for (const [tag, val] of tags) {
      const s = await str(val);
      if (tag === DT_NEEDED) info.needed.push(s);
      else if (tag === DT_RPATH) info.rpath.push(...s.split(':').filter(Boolean));
      else info.runpath.push(...s.split(':').filter(Boolean));
    }
    return info;
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

/** The interpreter named by a "#!" line, with its optional argument; null when the file does not start with "#!". */
export async function readShebang(hostPath: string): Promise<{ interp: string; arg?: string } | null> {
  const fh = await openOrNull(hostPath);
  if (fh === null) return null;
  try {
    const b = Buffer.alloc(256);
    const { bytesRead } = await fh.read(b, 0, 256, 0);
    if (bytesRead < 3 || b[0] !== 0x23 || b[1] !== 0x21) return null;
    const line = b.subarray(2, bytesRead).toString('latin1').split('\n')[0].trim();
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) return null;
    return { interp: m[1], arg: m[2]?.trim() || undefined };
  } finally {
    await fh.close();
  }
}
