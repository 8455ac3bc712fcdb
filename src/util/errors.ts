/**
 * Errors are values with a kind. Every failure a user can cause or meet is an
 * MkimgError; its kind decides the exit code (one table, here), so scripts can
 * tell a bad manifest from a bad signature without parsing text.
 */
export const EXIT_CODES = {
  ok: 0,
  internal: 1, // a bug in mkimg: please report it
  usage: 2, // bad command-line arguments
  manifest: 3, // the manifest is invalid: schema, missing file, unknown user
  input: 4, // an input's bytes are wrong: sha256 mismatch, hostile or corrupt .deb
  repository: 5, // a repository or mirror failed: network, InRelease, Packages hash
  signature: 6, // the manifest's OpenPGP signature is missing, bad or untrusted
  integrity: 7, // the image tar is not whole: digest, size, diff_ids, truncated
  binding: 8, // the image was not built from this manifest
  rebuild: 9, // a rebuild gave different bytes
  check: 10, // a check failed: in the full root, or the minimized root differs
  lock: 11, // the lock is stale or missing (lock --check, build)
  registry: 12, // a registry refused or failed a push/pull
  resolve: 13, // dependency resolution failed: unsatisfiable, conflict, unknown package
  sandbox: 14, // the tracer could not run: namespaces, ptrace, seccomp
  environment: 15, // the machine failed mkimg: disk full, read-only or unusable cache/work/output folder, missing tool
} as const;

export type ErrorKind = keyof typeof EXIT_CODES;

export class MkimgError extends Error {
  readonly kind: ErrorKind;
  /** What the user can do about it, printed after the message. */
  readonly hint?: string;
  /** Structured details for --json output. */
  readonly details?: Record<string, unknown>;

  constructor(
    kind: ErrorKind,
    message: string,
    opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'MkimgError';
    this.kind = kind;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }
}

export function isMkimgError(e: unknown): e is MkimgError {
  return e instanceof MkimgError;
}
