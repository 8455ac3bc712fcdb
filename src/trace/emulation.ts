/**
 * Checks of a foreign architecture run under user-mode emulation: the kernel
 * hands the foreign binary to qemu-user through binfmt_misc. The handler must
 * carry the F flag (the interpreter is opened when it is registered), since
 * the sandbox's root holds no qemu binary.
 */
import { readFileSync } from 'node:fs';
import { architectureFacts, hostArchitecture } from '../debian/arch.js';
import { MkimgError } from '../util/errors.js';

const BINFMT = '/proc/sys/fs/binfmt_misc';

export interface Emulation {
  /** The binfmt_misc handler's interpreter, or undefined when the architecture runs natively. */
  interpreter?: string;
}

/** How checks of `arch` run on this host; throws (exit 14) when they cannot. */
/** `MKIMG_BINFMT_DIR` points elsewhere (tests stand in a host without a handler). */
export function emulationFor(arch: string, binfmtDir = process.env.MKIMG_BINFMT_DIR || BINFMT): Emulation {
  if (arch === hostArchitecture()) return {};
  const facts = architectureFacts(arch);
  const fix = `install Debian's qemu-user-static and binfmt-support (apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc binfmt_misc ${BINFMT} if it is not mounted), or build ${arch} with minimize: false`;
  if (!facts)
    throw new MkimgError('sandbox', `cannot run checks for architecture ${arch} on this ${hostArchitecture()} host`, {
      hint: `build ${arch} with minimize: false`,
    });
  let text: string;
  try {
    text = readFileSync(`${binfmtDir}/qemu-${facts.qemu}`, 'utf8');
  } catch {
    throw new MkimgError(
      'sandbox',
      `cannot run ${arch} checks on this ${hostArchitecture()} host: no binfmt_misc handler for ${facts.qemu} (${binfmtDir}/qemu-${facts.qemu})`,
      { hint: fix },
    );
  }
  const enabled = /^enabled$/m.test(text);
  const flags = /^flags:\s*(\S*)/m.exec(text)?.[1] ?? '';
  const interpreter = /^interpreter\s+(\S+)/m.exec(text)?.[1];
  if (!enabled)
    throw new MkimgError(
      'sandbox',
      `cannot run ${arch} checks: the binfmt_misc handler qemu-${facts.qemu} is disabled`,
      { hint: `update-binfmts --enable qemu-${facts.qemu}, or ${fix}` },
    );
  if (!flags.includes('F')) {
    throw new MkimgError(
      'sandbox',
      `cannot run ${arch} checks: the binfmt_misc handler qemu-${facts.qemu} lacks the F flag, so the sandbox cannot reach ${interpreter ?? 'its interpreter'}`,
      {
        hint: "use Debian's qemu-user-static (its handlers are registered with F), or " + fix,
      },
    );
  }
  return { interpreter };
}
