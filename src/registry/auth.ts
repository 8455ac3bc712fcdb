/**
 * Registry credentials and authentication challenges.
 *
 * Credentials come from (first match wins):
 *   1. an explicit file (option authFile),
 *   2. $REGISTRY_AUTH_FILE,
 *   3. ${XDG_RUNTIME_DIR}/containers/auth.json (Podman, skopeo),
 *   4. $DOCKER_CONFIG/config.json or ~/.docker/config.json (Docker).
 * Each holds `{"auths": {"<host>": {"auth": base64("user:password")}}}`.
 * Credential helpers (credsStore, credHelpers) are not run.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MkimgError } from '../util/errors.js';

export interface Credentials {
  username: string;
  password: string;
  /** The file they came from (for error messages). */
  source: string;
}

export function authFileCandidates(explicit?: string): string[] {
  const files: string[] = [];
  if (explicit) files.push(explicit);
  if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.XDG_RUNTIME_DIR) files.push(join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  const dockerDir = process.env.DOCKER_CONFIG || join(homedir(), '.docker');
  files.push(join(dockerDir, 'config.json'));
  return files;
}

function keysFor(registry: string): string[] {
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

/** Find credentials for `registry` (host[:port]) in the auth files. */
export function findCredentials(registry: string, explicitFile?: string): Credentials | undefined {
  for (const file of authFileCandidates(explicitFile)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if (file === explicitFile) {
        throw new MkimgError('usage', `cannot read the registry auth file ${file}: ${(e as Error).message}`);
      }
      continue;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new MkimgError('usage', `registry auth file ${file} is not valid JSON: ${(e as Error).message}`, {
        hint: 'it should look like {"auths":{"HOST:PORT":{"auth":"<base64 of user:password>"}}}',
      });
    }
    const auths = (doc as { auths?: Record<string, { auth?: string; username?: string; password?: string }> }).auths;
    if (!auths || typeof auths !== 'object') continue;
    for (const key of keysFor(registry)) {
      const entry = auths[key];
      if (!entry) continue;
      if (typeof entry.username === 'string' && typeof entry.password === 'string') {
        return { username: entry.username, password: entry.password, source: file };
      }
      if (typeof entry.auth === 'string' && entry.auth !== '') {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i < 0) {
          throw new MkimgError(
            'usage',
            `registry auth file ${file}: auths["${key}"].auth is not base64 of "user:password"`,
          );
        }
        return { username: decoded.slice(0, i), password: decoded.slice(i + 1), source: file };
      }
    }
  }
  return undefined;
}

export function basicHeader(c: { username: string; password: string }): string {
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64');
}

export interface Challenge {
  scheme: string; // lowercased: "basic", "bearer"
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate header value. Handles one or several challenges,
 * quoted strings with escapes, and commas inside quoted values
 * (scope="repository:a:pull,push").
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (!header) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  let i = 0;
  const n = text.length;
  const skipWs = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === ',')) i++;
  };
  while (i < n) {
    skipWs();
    const m = /^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*/.exec(text.slice(i));
    if (!m) break;
    const cur: Challenge = { scheme: m[0].toLowerCase(), params: {} };
    i += m[0].length;
    out.push(cur);
    // params: key=value pairs until the next token that is not followed by '='
    for (;;) {
      skipWs();
      const km = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*/.exec(text.slice(i));
      if (!km) break;
      i += km[0].length;
      let value = '';
      if (text[i] === '"') {
        i++;
        while (i < n && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < n) i++;
          value += text[i];
          i++;
        }
        i++; // closing quote
      } else {
        const vm = /^[^,\s]*/.exec(text.slice(i));
        value = vm ? vm[0] : '';
        i += value.length;
      }
      cur.params[km[1].toLowerCase()] = value;
    }
  }
  return out;
}
