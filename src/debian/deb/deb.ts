/**
 * readDeb: a .deb read front to back, as dpkg-deb reads it.
 *
 * Members, in this order and no other: `debian-binary` ("2.x\n"), then
 * `control.tar[.gz|.xz|.zst]`, then `data.tar[.gz|.xz|.zst]`. Members whose
 * name starts with "_" are ignored anywhere (dpkg's rule for additions such as
 * signatures). Anything else is an 'input' error naming the .deb.
 * The control archive is read whole (it is small); the data archive is
 * streamed through entries().
 */
import { createReadStream } from 'node:fs';
import { MkimgError } from '../../util/errors.js';
import { ByteReader } from './bytes.js';
import { ArReader } from './ar.js';
import { type Compression, compressionOf, decompress, formatBytes, type DecompressLimit } from './decompress.js';
import { readTar, type TarEntry } from './tar.js';

export interface DebControlArchive {
  /** The `control` file text, verbatim. */
  control: string;
  /** The `md5sums` file text, when present. */
  md5sums?: string;
  /** Every regular file of the control archive by name ("control", "postinst", "conffiles", ...). */
  files: Map<string, Buffer>;
  compression: Compression;
}

export interface Deb {
  path: string;
  /** debian-binary contents, e.g. "2.0\n". */
  formatVersion: string;
  control: DebControlArchive;
  dataMember: string;
  dataCompression: Compression;
  /**
   * The data archive's tar entries, streamed. Call at most once; closes the
   * file when done. `tee` sees every byte of the decompressed data archive, in
   * order, before the entries made of it are yielded (TarEntry.dataOffset
   * counts from its first byte), and, once the entries are done, the rest of
   * the archive too (the blocks after the end marker), so it can hash the
   * whole member.
   */
  entries(opts?: { tee?: (chunk: Buffer) => void }): AsyncGenerator<TarEntry>;
  /** True when the decompressed data archive came from a data cache (readDebBuffer's dataCache). */
  dataFromCache: boolean;
  /** Release the file (needed only when entries() is not run to the end). */
  close(): Promise<void>;
}

/** The most a control member may hold, compressed or decompressed (SPEC §4 "Limits"). */
export const CONTROL_LIMIT = 64 << 20;
/** The most any data archive may decompress to, whatever the package declares (SPEC §4 "Limits"). */
export const DATA_CEILING = 16 * 2 ** 30;
/** The most readDebBuffer decompresses ahead, in memory (an xz data archive, or one for the data cache). SPEC §4 "Limits". */
export const EAGER_LIMIT = 4 * 2 ** 30;

/**
 * The data archive's bound from the Installed-Size (KiB) the package declares
 * (the figure the signed Packages index carries for the same sha256): twice
 * it, for tar's 512-byte headers and padding of small files, plus 64 MiB;
 * never past DATA_CEILING. Without an Installed-Size: DATA_CEILING.
 */
export function dataLimit(pkg: string, installedSizeKiB: string | undefined): DecompressLimit {
  const kib =
    installedSizeKiB !== undefined && /^[0-9]{1,12}$/.test(installedSizeKiB.trim())
      ? Number(installedSizeKiB.trim())
      : undefined;
  if (kib === undefined)
    return { maxBytes: DATA_CEILING, why: `the ceiling for a data archive; ${pkg} declares no Installed-Size` };
  const bound = kib * 1024 * 2 + (64 << 20);
  if (bound >= DATA_CEILING) return { maxBytes: DATA_CEILING, why: 'the ceiling for a data archive' };
  return { maxBytes: bound, why: `${pkg} declares Installed-Size ${kib} KiB; the bound is twice that plus 64 MiB` };
}

export async function readDeb(path: string): Promise<Deb> {
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', reject);
  });
  try {
    await opened;
  } catch (e) {
    stream.destroy();
    const code = (e as NodeJS.ErrnoException).code;
    throw new MkimgError('input', `${path}: cannot read the package file (${code ?? String(e)})`, { cause: e });
  }
  return parseDeb(new ByteReader(stream, path), path, false);
}

/**
 * readDeb over a .deb already read into memory (`bytes`, e.g. after checking
 * its sha256). When the data member is xz, which is decompressed whole in any
 * case, it is read and decompressed here, before this resolves, so the caller
 * can prepare the next packages while extracting the current one. entries()
 * then replays exactly what a streamed read gives: the same entries, and each
 * error (truncation, corrupt data, a member after data.tar) at the same point.
 * Other compressions stay streamed from memory, as readDeb streams them.
 * With a dataCache, an xz or zstd data archive is taken from it when it holds
 * one (and stored in it after decompressing otherwise; zstd is then also
 * decompressed whole here), with the same replay.
 */
export async function readDebBuffer(
  path: string,
  bytes: Buffer,
  opts: { dataCache?: DataArchiveCache } = {},
): Promise<Deb> {
  const source = (async function* () {
    yield bytes;
  })();
  return parseDeb(new ByteReader(source, path), path, true, opts.dataCache);
}

/**
 * A store of this one .deb's decompressed data archive (readDebBuffer's
 * dataCache), bound by the caller to the .deb's sha256 after checking that
 * sha256 against its pin. Used for xz and zstd data members only; the store
 * verifies what it returns, and its failures count as misses.
 */
export interface DataArchiveCache {
  /** The decompressed data archive stored for this .deb (verified), or undefined. */
  get(): Promise<Buffer | undefined>;
  /** Store it; called only after the member decompressed without error and nothing but "_" members follow it. */
  put(data: readonly Buffer[]): Promise<void>;
}

async function parseDeb(bytes: ByteReader, path: string, eagerXz: boolean, dataCache?: DataArchiveCache): Promise<Deb> {
  const ar = new ArReader(bytes, path);
  try {
    const next = async (): Promise<import('./ar.js').ArMember | null> => {
      for (;;) {
        const m = await ar.next();
        if (m === null || !m.name.startsWith('_')) return m;
      }
    };
    const first = await next();
    if (!first || first.name !== 'debian-binary') {
      throw orderError(path, first?.name ?? '(end of file)', 'debian-binary');
    }
    if (first.size > 64)
      throw new MkimgError('input', `${path}: debian-binary member is ${first.size} bytes, expected "2.0\\n"`);
    const formatVersion = (await ar.readBody()).toString('latin1');
    if (!/^2\.\d+\n/.test(formatVersion)) {
      throw new MkimgError(
        'input',
        `${path}: unsupported package format ${JSON.stringify(formatVersion)} in debian-binary (expected "2.0\\n")`,
      );
    }

    const cm = await next();
    const cComp = cm ? compressionOf(cm.name, 'control.tar') : null;
    if (!cm || cComp === null) throw orderError(path, cm?.name ?? '(end of file)', 'control.tar[.gz|.xz|.zst]');
    if (cm.size > CONTROL_LIMIT)
      throw new MkimgError('input', `${path}: control member of ${cm.size} bytes is implausibly large`);
    const control = await readControlArchive(ar.body(), cComp, `${path}: ${cm.name}`, path);

    const dm = await next();
    const dComp = dm ? compressionOf(dm.name, 'data.tar') : null;
    if (!dm || dComp === null) throw orderError(path, dm?.name ?? '(end of file)', 'data.tar[.gz|.xz|.zst]');
    const dataLabel = `${path}: ${dm.name}`;
    const stanza = parseControlStanza(control.control);
    const limit = dataLimit(`package ${stanza.Package ?? '(unnamed)'}`, stanza['Installed-Size']);

    // The data archive's bytes and what follows it: streamed, or (xz from
    // memory) decompressed now and replayed, errors included, where they arise.
    let data: () => AsyncIterable<Buffer>;
    let after: () => Promise<void>;
    let cached: Buffer | undefined;
    const checkAfter = async (): Promise<void> => {
      // Nothing but "_" members may follow the data archive.
      const extra = await next();
      if (extra) throw orderError(path, extra.name, 'nothing after data.tar');
    };
    // Decompressing ahead holds the whole archive in memory, so there the
    // bound is at most EAGER_LIMIT.
    const eager = eagerXz;
    const eagerLimit =
      limit.maxBytes <= EAGER_LIMIT
        ? limit
        : { maxBytes: EAGER_LIMIT, why: 'the ceiling for a data archive decompressed in memory' };
    const cache = eager && (dComp === 'xz' || dComp === 'zstd') ? dataCache : undefined;
    if (eager && (dComp === 'xz' || cache)) {
      let out: Buffer[] = [];
      let dataErr: { e: unknown } | null = null;
      let afterErr: { e: unknown } | null = null;
      // A cached copy stands in for decompressing the member only: the member's
      // compressed bytes are then skipped (by next()), and everything around it
      // (the ar layout, the control archive, nothing after data.tar) is still
      // read from the verified .deb bytes. An entry is only ever stored after
      // the same .deb decompressed cleanly, so a hit cannot hide a corrupt member.
      cached = cache ? await cache.get().catch(() => undefined) : undefined;
      if (cached) {
        out = [cached];
      } else {
        try {
          for await (const c of decompress(ar.body(), dComp, dataLabel, eagerLimit)) out.push(c);
        } catch (e) {
          dataErr = { e };
        }
      }
      if (!dataErr) {
        try {
          await checkAfter();
        } catch (e) {
          afterErr = { e };
        }
      }
      if (cache && !cached && !dataErr && !afterErr) await cache.put(out).catch(() => {});
      await bytes.close();
      data = async function* () {
        yield* out;
        if (dataErr) throw dataErr.e;
      };
      after = async () => {
        if (afterErr) throw afterErr.e;
      };
    } else {
      data = () => decompress(ar.body(), dComp, dataLabel, limit);
      after = checkAfter;
    }

    let started = false;
    const entries = async function* (opts: { tee?: (chunk: Buffer) => void } = {}): AsyncGenerator<TarEntry> {
      if (started) throw new Error('Deb.entries() called twice');
      started = true;
      const tee = opts.tee;
      // With or without a tee, the data archive is read to its end after the
      // tar's end marker, so its compressed stream is checked whole (a gzip
      // stream without its trailer fails both ways, as it does for dpkg).
      const r = new ByteReader(
        (async function* () {
          for await (const c of data()) {
            tee?.(c);
            yield c;
          }
        })(),
        dataLabel,
      );
      try {
        yield* readTar(r, dataLabel);
        while ((await r.read(1 << 20)).length > 0); // the rest, through the tee
        await after();
      } finally {
        await r.close();
        await bytes.close();
      }
    };
    return {
      path,
      formatVersion,
      control,
      dataMember: dm.name,
      dataCompression: dComp,
      entries,
      dataFromCache: cached !== undefined,
      close: () => bytes.close(),
    };
  } catch (e) {
    await bytes.close();
    throw e;
  }
}

async function readControlArchive(
  body: AsyncIterable<Buffer>,
  comp: Compression,
  label: string,
  path: string,
): Promise<DebControlArchive> {
  const files = new Map<string, Buffer>();
  const limit = { maxBytes: CONTROL_LIMIT, why: `the limit for a control archive, ${formatBytes(CONTROL_LIMIT)}` };
  for await (const e of readTar(decompress(body, comp, label, limit), label)) {
    if (e.type !== 'file') continue;
    const name = e.name.replace(/^(\.\/)+/, '');
    if (name.includes('/')) continue;
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    files.set(name, Buffer.concat(parts));
  }
  const control = files.get('control');
  if (!control) throw new MkimgError('input', `${path}: the control archive has no "control" file`);
  const md5 = files.get('md5sums');
  return { control: control.toString('utf8'), md5sums: md5?.toString('utf8'), files, compression: comp };
}

function orderError(path: string, found: string, expected: string): MkimgError {
  return new MkimgError(
    'input',
    `${path}: not a valid Debian package: found member "${found}" where ${expected} was expected`,
    {
      hint: 'a .deb holds debian-binary, control.tar.*, data.tar.* in that order; the file is corrupt or not a Debian binary package',
    },
  );
}

/** Read only the control archive (and close the file). */
export async function readDebControl(path: string): Promise<DebControlArchive> {
  const d = await readDeb(path);
  await d.close();
  return d.control;
}

/**
 * Parse one deb822 stanza (a control file): "Field: value" lines, continuation
 * lines start with a space or tab. Field names are kept as written; look-ups
 * should use the spelling dpkg uses (Package, Version, Architecture).
 */
export function parseControlStanza(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let last: string | null = null;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) {
      if (line === '' && last !== null && Object.keys(out).length) {
        // blank line ends the first stanza
        break;
      }
      continue;
    }
    if (line[0] === ' ' || line[0] === '\t') {
      if (last !== null) out[last] += '\n' + line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon);
    out[last] = line.slice(colon + 1).trim();
  }
  return out;
}
