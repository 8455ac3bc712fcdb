/**
 * The dependency resolver: from requested names to the minimal closure over
 * Depends and Pre-Depends (Recommends/Suggests are not followed; Essential or
 * required packages are added only when something depends on them).
 *
 * Choice rules (apt with default pins): per name, the highest version wins,
 * NotAutomatic suites only when nothing else fits, ties go to the earlier
 * source/suite. One version per name. Alternatives: a group already satisfied
 * by a chosen package stays so; else the first alternative with a candidate.
 * A real package beats a provider of the same name; among providers, one
 * already chosen, else by Priority (required > important > standard >
 * optional > extra), then name. Output is sorted by name.
 */
import type { PackageRecord } from './packages.js';
import { forArchitecture, formatGroup, formatRelation, type Relation } from './relations.js';
import { compareVersions, satisfiesVersion } from './version.js';
import { MkimgError } from '../util/errors.js';

export interface ResolveRequest {
  name: string;
  /** Exact version (from `name=version`). */
  version?: string;
}

interface Provider {
  pkg: PackageRecord;
  version?: string; // versioned Provides
}

export class Universe {
  readonly arch: string;
  /** name → candidates, best first. */
  readonly byName = new Map<string, PackageRecord[]>();
  /** virtual name → providing records. */
  readonly providers = new Map<string, Provider[]>();

  constructor(records: PackageRecord[], arch: string) {
    this.arch = arch;
    const seen = new Map<string, PackageRecord>();
    for (const r of records) {
      if (r.architecture !== arch && r.architecture !== 'all') continue;
      const key = `${r.name}\0${r.version}\0${r.architecture}`;
      const prev = seen.get(key);
      if (prev && prev.rank <= r.rank) continue;
      seen.set(key, r);
    }
    for (const r of seen.values()) {
      let l = this.byName.get(r.name);
      if (!l) this.byName.set(r.name, (l = []));
      l.push(r);
      for (const p of r.provides) {
        let pl = this.providers.get(p.name);
        if (!pl) this.providers.set(p.name, (pl = []));
        pl.push({ pkg: r, version: p.op === '=' ? p.version : undefined });
      }
    }
    for (const l of this.byName.values()) l.sort(betterFirst);
  }

  candidates(name: string): PackageRecord[] {
    return this.byName.get(name) ?? [];
  }
}

function betterFirst(a: PackageRecord, b: PackageRecord): number {
  if (a.notAutomatic !== b.notAutomatic) return a.notAutomatic ? 1 : -1;
  const c = compareVersions(b.version, a.version);
  if (c !== 0) return c;
  if (a.rank !== b.rank) return a.rank - b.rank;
  return a.architecture === 'all' ? 1 : b.architecture === 'all' ? -1 : 0;
}

const PRIORITY: Record<string, number> = { required: 0, important: 1, standard: 2, optional: 3, extra: 4 };

interface Why {
  parent?: string;
  via: string; // "request" or the relation text that pulled it in
}

function qualifierOk(rel: Relation, pkg: PackageRecord, arch: string, viaProvides: boolean): boolean {
  const q = rel.archQualifier;
  if (!q || q === 'native' || q === arch) return true;
  if (q === 'any') return pkg.multiArch === 'allowed' || (viaProvides && pkg.multiArch === 'foreign');
  return false; // another architecture: not indexed
}

export interface ResolveOptions {
  /**
   * Packages that are part of the image without coming from the indexes (local
   * .debs): chosen first, their dependencies followed, and they satisfy others'.
   * They are returned in the closure too.
   */
  preinstalled?: PackageRecord[];
}

export function resolveClosure(
  universe: Universe,
  requests: ResolveRequest[],
  opts: ResolveOptions = {},
): PackageRecord[] {
  const arch = universe.arch;
  const chosen = new Map<string, PackageRecord>();
  const why = new Map<string, Why>();
  const queue: PackageRecord[] = [];

  const chain = (name: string): string[] => {
    const out: string[] = [];
    let cur: string | undefined = name;
    const guard = new Set<string>();
    while (cur && !guard.has(cur)) {
      guard.add(cur);
      out.unshift(cur);
      cur = why.get(cur)?.parent;
    }
    return out;
  };

  const available = (name: string): string => {
    const c = universe.candidates(name);
    if (c.length) return ` (available: ${c.map((p) => `${p.version} from ${p.suite}`).join(', ')})`;
    const pr = universe.providers.get(name);
    if (pr?.length)
      return ` (virtual, provided by: ${[...new Set(pr.map((p) => p.pkg.name + (p.version ? ` ${p.version}` : '')))].sort().join(', ')})`;
    return ' (no package of that name in the sources)';
  };

  const add = (pkg: PackageRecord, w: Why) => {
    if (chosen.has(pkg.name)) return;
    chosen.set(pkg.name, pkg);
    why.set(pkg.name, w);
    queue.push(pkg);
  };

  // 0. Local packages.
  const localProviders = new Map<string, Provider[]>();
  for (const pkg of opts.preinstalled ?? []) {
    if (chosen.has(pkg.name)) throw new MkimgError('resolve', `two local .debs are both package ${pkg.name}`);
    add(pkg, { via: 'local' });
    for (const p of pkg.provides) {
      let l = localProviders.get(p.name);
      if (!l) localProviders.set(p.name, (l = []));
      l.push({ pkg, version: p.op === '=' ? p.version : undefined });
    }
  }
  const providersOf = (name: string): Provider[] => {
    const l = universe.providers.get(name) ?? [];
    const local = localProviders.get(name);
    return local ? [...local, ...l] : l;
  };

  // 1. The requests, all chosen before any dependency is followed.
  for (const req of requests) {
    const local = chosen.get(req.name);
    if (local && why.get(req.name)?.via === 'local') {
      throw new MkimgError('resolve', `${req.name} is requested by name and also given as a local .deb`, {
        hint: 'keep one of the two in packages:',
        details: { package: req.name },
      });
    }
    const cands = universe.candidates(req.name);
    if (cands.length === 0) {
      const prov = universe.providers.get(req.name);
      if (prov?.length) {
        const names = [...new Set(prov.map((p) => p.pkg.name))].sort();
        throw new MkimgError('resolve', `${req.name} is a virtual package, provided by: ${names.join(', ')}`, {
          hint: `request the providing package you want by name, e.g. ${names[0]}`,
          details: { package: req.name },
        });
      }
      throw new MkimgError('resolve', `${req.name}: no such package in the configured sources for ${arch}`, {
        hint: 'check the spelling, the suites and components of the sources, and the manifest architecture',
        details: { package: req.name },
      });
    }
    const pick = req.version ? cands.find((c) => compareVersions(c.version, req.version!) === 0) : cands[0];
    if (!pick) {
      throw new MkimgError('resolve', `${req.name}=${req.version}: no such version${available(req.name)}`, {
        hint: 'pin an available version, or drop the =version to take the newest',
        details: { package: req.name },
      });
    }
    const prev = chosen.get(req.name);
    if (prev && prev.version !== pick.version) {
      throw new MkimgError(
        'resolve',
        `${req.name} is requested twice with different versions (${prev.version}, ${pick.version})`,
      );
    }
    add(pick, { via: 'request' });
  }

  const realOk = (rel: Relation, p: PackageRecord) =>
    qualifierOk(rel, p, arch, false) && (!rel.op || satisfiesVersion(p.version, rel.op, rel.version!));
  const provOk = (rel: Relation, pr: Provider) =>
    qualifierOk(rel, pr.pkg, arch, true) &&
    (!rel.op || (pr.version !== undefined && satisfiesVersion(pr.version, rel.op, rel.version!)));

  const satisfiedByChosen = (rel: Relation): boolean => {
    const c = chosen.get(rel.name);
    if (c && realOk(rel, c)) return true;
    for (const pr of providersOf(rel.name)) {
      if (chosen.get(pr.pkg.name) === pr.pkg && provOk(rel, pr)) return true;
    }
    return false;
  };

  /** A new package for `rel`, or a reason why none. */
  const pickFor = (rel: Relation): PackageRecord | string => {
    const already = chosen.get(rel.name);
    if (already) {
      // one version per name: the chosen one does not fit; maybe a provider does
    } else {
      const c = universe.candidates(rel.name).find((p) => realOk(rel, p));
      if (c) return c;
    }
    const provs = (universe.providers.get(rel.name) ?? []).filter((pr) => {
      if (!provOk(rel, pr)) return false;
      const cur = chosen.get(pr.pkg.name);
      if (cur) return cur === pr.pkg;
      return universe.candidates(pr.pkg.name)[0] === pr.pkg; // only a name's best candidate
    });
    if (provs.length) {
      provs.sort((a, b) => {
        const pa = PRIORITY[a.pkg.priority ?? 'optional'] ?? 3;
        const pb = PRIORITY[b.pkg.priority ?? 'optional'] ?? 3;
        if (pa !== pb) return pa - pb;
        return a.pkg.name < b.pkg.name ? -1 : a.pkg.name > b.pkg.name ? 1 : 0;
      });
      return provs[0]!.pkg;
    }
    if (already)
      return `${rel.name} ${already.version} is already chosen (via ${chain(rel.name).join(' → ')}) and does not satisfy ${formatRelation(rel)}`;
    return `no candidate${available(rel.name)}`;
  };

  // 2. Breadth-first over dependencies, in a fixed order.
  for (let i = 0; i < queue.length; i++) {
    const pkg = queue[i]!;
    const groups = forArchitecture([...pkg.preDepends, ...pkg.depends], arch);
    for (const group of groups) {
      if (group.some(satisfiedByChosen)) continue;
      const reasons: string[] = [];
      let picked: PackageRecord | undefined;
      for (const rel of group) {
        const r = pickFor(rel);
        if (typeof r === 'string') reasons.push(group.length > 1 ? `${formatRelation(rel)}: ${r}` : r);
        else {
          picked = r;
          break;
        }
      }
      if (!picked) {
        const path = chain(pkg.name).join(' → ');
        throw new MkimgError('resolve', `${path} → ${formatGroup(group)} → ${reasons.join('; ')}`, {
          hint: 'add a source or suite that has it, pin a different version of a requested package, or add a local .deb',
          details: { chain: [...chain(pkg.name), formatGroup(group)] },
        });
      }
      add(picked, { parent: pkg.name, via: formatGroup(group) });
    }
  }

  // 3. Conflicts and Breaks among the chosen set.
  for (const pkg of chosen.values()) {
    for (const [field, list] of [
      ['Conflicts', pkg.conflicts],
      ['Breaks', pkg.breaks],
    ] as const) {
      for (const group of forArchitecture(list, arch)) {
        for (const rel of group) {
          const other = chosen.get(rel.name);
          const hits: PackageRecord[] = [];
          if (other && other !== pkg && (!rel.op || satisfiesVersion(other.version, rel.op, rel.version!)))
            hits.push(other);
          if (!rel.op) {
            for (const pr of providersOf(rel.name)) {
              if (pr.pkg !== pkg && chosen.get(pr.pkg.name) === pr.pkg && !hits.includes(pr.pkg)) hits.push(pr.pkg);
            }
          }
          for (const h of hits) {
            throw new MkimgError(
              'resolve',
              `conflict: ${pkg.name} ${pkg.version} (${chain(pkg.name).join(' → ')}) ${field} ${formatRelation(rel)}, but ${h.name} ${h.version} is needed (${chain(h.name).join(' → ')})`,
              {
                hint: 'choose other alternatives or versions so the two are not both needed',
                details: { chain: chain(pkg.name), other: chain(h.name) },
              },
            );
          }
        }
      }
    }
  }

  return [...chosen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
