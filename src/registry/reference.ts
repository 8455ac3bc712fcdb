/**
 * Image references: `host[:port]/repo[/more][:tag|@sha256:<hex>]`.
 * The registry host is required (no docker.io default): the first path
 * component must look like a host (contain "." or ":", be "localhost", or be a
 * bracketed IPv6 address).
 */
import { MkimgError } from '../util/errors.js';

export interface ImageReference {
  /** host[:port] as written (IPv6 in brackets). */
  registry: string;
  /** Host name without port or brackets. */
  hostname: string;
  /** Repository path below the registry, e.g. "team/app". */
  repository: string;
  tag?: string;
  /** "sha256:<hex>" */
  digest?: string;
}

const REPO_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/;

function usage(ref: string, why: string, hint?: string): MkimgError {
  return new MkimgError('usage', `image reference "${ref}": ${why}`, {
    hint:
      hint ??
      'write it as HOST[:PORT]/REPOSITORY[:TAG] or HOST[:PORT]/REPOSITORY@sha256:<hex>, e.g. 127.0.0.1:5000/app:1.0',
  });
}

export function parseReference(ref: string): ImageReference {
  const input = ref.trim();
  if (input === '') throw usage(ref, 'is empty');
  if (/^[a-z]+:\/\//i.test(input)) throw usage(ref, 'must not start with a URL scheme');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw usage(ref, `digest "${digest}" is not sha256:<64 lowercase hex>`);
  }
  const slash = rest.indexOf('/');
  if (slash < 0)
    throw usage(
      ref,
      'has no registry host',
      'name the registry explicitly: HOST[:PORT]/REPOSITORY[:TAG] (there is no default registry)',
    );
  const registry = rest.slice(0, slash);
  const looksLikeHost =
    registry.includes('.') || registry.includes(':') || registry === 'localhost' || registry.startsWith('[');
  if (!looksLikeHost || !HOST.test(registry)) {
    throw usage(
      ref,
      `"${registry}" is not a registry host`,
      'name the registry explicitly: HOST[:PORT]/REPOSITORY[:TAG] (there is no default registry)',
    );
  }
  let path = rest.slice(slash + 1);
  let tag: string | undefined;
  const lastSlash = path.lastIndexOf('/');
  const colon = path.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag))
      throw usage(
        ref,
        `tag "${tag}" is invalid (letters, digits, "_", "." and "-", at most 128, not starting with "." or "-")`,
      );
  }
  if (path === '') throw usage(ref, 'has no repository');
  for (const comp of path.split('/')) {
    if (!REPO_COMPONENT.test(comp))
      throw usage(
        ref,
        `repository component "${comp}" is invalid (lowercase letters, digits and single separators ".", "_", "__", "-")`,
      );
  }
  if (path.length > 255) throw usage(ref, 'repository name is longer than 255 characters');
  let hostname = registry;
  if (hostname.startsWith('[')) hostname = hostname.slice(1, hostname.indexOf(']'));
  else if (hostname.includes(':')) hostname = hostname.slice(0, hostname.lastIndexOf(':'));
  return { registry, hostname, repository: path, tag, digest };
}

export function formatReference(r: ImageReference): string {
  let s = `${r.registry}/${r.repository}`;
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/**
 * Parse "host/repo" (no tag, no digest) as used by --cache-registry and --mount-from.
 * A bare repo path (no host) is allowed for --mount-from when `defaultRegistry` is given.
 */
export function parseRepository(
  ref: string,
  defaultRegistry?: string,
): { registry: string; hostname: string; repository: string } {
  const hasHost = (() => {
    const first = ref.split('/')[0] ?? '';
    return (
      ref.includes('/') &&
      (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))
    );
  })();
  const full = hasHost || !defaultRegistry ? ref : `${defaultRegistry}/${ref}`;
  const r = parseReference(full);
  if (r.tag || r.digest) throw usage(ref, 'must name a repository without a tag or digest');
  return { registry: r.registry, hostname: r.hostname, repository: r.repository };
}

/** Loopback hosts may use plain HTTP without --insecure. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}
