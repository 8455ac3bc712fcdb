/**
 * Debian architectures: what the rest of mkimg needs to know of one without
 * knowing Debian. The multiarch triplet names the library folders the dynamic
 * loader searches; the ELF machine and the QEMU name say what runs it.
 */
export interface ArchitectureFacts {
  /** Debian's name: amd64, arm64, ... */
  debian: string;
  /** GNU multiarch triplet (library folders /usr/lib/<triplet>). */
  triplet: string;
  /** ELF e_machine of its binaries. */
  elfMachine: number;
  /** binfmt_misc / qemu-user name (qemu-<name>). */
  qemu: string;
}

const FACTS: ArchitectureFacts[] = [
  { debian: 'amd64', triplet: 'x86_64-linux-gnu', elfMachine: 62, qemu: 'x86_64' },
  { debian: 'arm64', triplet: 'aarch64-linux-gnu', elfMachine: 183, qemu: 'aarch64' },
  { debian: 'armhf', triplet: 'arm-linux-gnueabihf', elfMachine: 40, qemu: 'arm' },
  { debian: 'i386', triplet: 'i386-linux-gnu', elfMachine: 3, qemu: 'i386' },
  { debian: 'ppc64el', triplet: 'powerpc64le-linux-gnu', elfMachine: 21, qemu: 'ppc64le' },
  { debian: 's390x', triplet: 's390x-linux-gnu', elfMachine: 22, qemu: 's390x' },
  { debian: 'riscv64', triplet: 'riscv64-linux-gnu', elfMachine: 243, qemu: 'riscv64' },
];

export function architectureFacts(debian: string): ArchitectureFacts | undefined {
  return FACTS.find((f) => f.debian === debian);
}

/** The loader's default search folders for an architecture (after ld.so.conf), merged-/usr first as on Debian. */
export function defaultLibraryDirs(debian: string): string[] {
  const f = architectureFacts(debian);
  return [...(f ? [`/lib/${f.triplet}`, `/usr/lib/${f.triplet}`] : []), '/lib', '/usr/lib'];
}

/** The Debian architecture of the machine mkimg runs on. */
export function hostArchitecture(): string {
  const byNode: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'armhf',
    ia32: 'i386',
    ppc64: 'ppc64el',
    s390x: 's390x',
    riscv64: 'riscv64',
  };
  return byNode[process.arch] ?? process.arch;
}
