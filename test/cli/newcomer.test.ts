/**
 * What a newcomer meets first: help text that flows, usage errors in mkimg's
 * own format, a clear message for a manifest that is not there, and shell
 * completion generated from the real command tree (run in real bash, fish, zsh).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flowText } from '../../src/cli/help.js';
import { mkimg } from '../helpers/cli.js';

const COMMANDS = ['build', 'lock', 'sign', 'verify', 'diff', 'inspect', 'push', 'pull', 'trace', 'completion'];
const work = mkdtempSync(join(tmpdir(), 'mkimg-newcomer-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The description paragraph(s) of `mkimg CMD --help`: between the usage line and "Arguments:"/"Options:". */
function descriptionLines(help: string): string[] {
  const lines = help.split('\n');
  const end = lines.findIndex((l) => /^(Arguments|Options):$/.test(l));
  return lines.slice(2, end).filter((l) => l !== '');
}

describe('--help text flows', () => {
  it.each(COMMANDS)('mkimg %s --help: no description line longer than 80 columns, none broken early', (c) => {
    const r = mkimg([c, '--help']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    const desc = descriptionLines(r.stdout);
    expect(desc.length).toBeGreaterThan(0);
    // Example commands ("  $ mkimg …") are printed as written; everything else fits.
    for (const l of lines) if (!l.startsWith('  $ ')) expect(l.length, l).toBeLessThanOrEqual(80);
    // Filled: a line followed by a continuation of the same paragraph could not have taken its first word.
    for (let i = 0; i + 1 < desc.length; i++) {
      const next = desc[i + 1];
      if (/^\s*(\d+\.|-)\s/.test(next) || /^\S/.test(next) !== /^\S/.test(desc[i])) continue;
      const firstWord = next.trim().split(/\s+/)[0];
      expect(desc[i].length + 1 + firstWord.length, `"${desc[i]}" then "${firstWord}"`).toBeGreaterThan(80);
    }
  });

  it('flowText refills paragraphs and hangs list items under their text', () => {
    const text = 'one two\nthree four five\n\n  1. alpha beta\n     gamma delta\n  2. epsilon\nlast';
    expect(flowText(text, 16)).toBe(
      'one two three\nfour five\n\n  1. alpha beta\n     gamma delta\n  2. epsilon\nlast',
    );
    expect(flowText(text, 80)).toBe('one two three four five\n\n  1. alpha beta gamma delta\n  2. epsilon\nlast');
    // help texts after the options: prose refilled, indented example lines as written
    expect(
      flowText('Examples:\n  $ a b c d e f\n  $ g\n\nExit codes: 0 ok,\n2 usage.', 12, { verbatimIndented: true }),
    ).toBe('Examples:\n  $ a b c d e f\n  $ g\n\nExit codes:\n0 ok, 2\nusage.');
  });
});

describe('usage errors', () => {
  it.each([
    [
      ['build', '--frob', 'm.yaml'],
      /^mkimg: error: unknown option '--frob'\nmkimg: hint: run `mkimg build --help` for usage\n$/,
    ],
    [
      ['build'],
      /^mkimg: error: missing required argument 'manifest'\nmkimg: hint: run `mkimg build --help` for usage\n$/,
    ],
    [
      ['key', 'generate', '--email', 'a@b'],
      /^mkimg: error: required option '--name <name>' not specified\nmkimg: hint: run `mkimg key generate --help` for usage\n$/,
    ],
    [
      ['bulid'],
      /^mkimg: error: unknown command 'bulid'\n\(Did you mean build\?\)\nmkimg: hint: run `mkimg --help` for usage\n$/,
    ],
    [['completion', 'tcsh'], /^mkimg: error: .*'tcsh' is invalid.*bash, zsh, fish/],
  ])('mkimg %j: exit 2, the mkimg: error: prefix and a hint naming the command', (args, stderr) => {
    const r = mkimg(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(stderr);
    expect(r.stdout).toBe('');
  });

  it.each([['build'], ['lock'], ['sign', '--key', 'k.asc']])(
    'a manifest that is not there: mkimg %s exits 2 naming the file',
    (...args) => {
      const missing = join(work, 'nope', 'manifest.yaml');
      const r = mkimg([args[0], missing, ...args.slice(1)]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `mkimg: error: cannot read manifest ${missing}: no such file\nmkimg: hint: give the path of ${args[0] === 'sign' ? 'the manifest.yaml to sign' : 'a manifest.yaml (see examples/ and SPEC.md)'}\n`,
      );
    },
  );

  it('a folder given as the manifest says so', () => {
    const r = mkimg(['lock', work]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot read manifest ${work}: it is a folder, not a file`);
  });
});

describe('mkimg completion', () => {
  const script = (shell: string) => {
    const r = mkimg(['completion', shell]);
    expect(r.code, r.stderr).toBe(0);
    const file = join(work, `mkimg.${shell}`);
    writeFileSync(file, r.stdout);
    return file;
  };
  const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

  it('bash: completes commands, subcommands, options, choices, and files for arguments', () => {
    const file = script('bash');
    const dir = join(work, 'files');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.yaml'), '');
    const complete = (...words: string[]) => {
      const r = spawnSync(
        'bash',
        [
          '-c',
          `source ${file}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _mkimg; printf '%s\\n' "\${COMPREPLY[@]}"`,
          'bash',
          'mkimg',
          ...words,
        ],
        { cwd: dir, encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.split('\n').filter(Boolean).sort();
    };
    expect(complete('')).toEqual([
      'build',
      'completion',
      'diff',
      'inspect',
      'key',
      'lock',
      'pull',
      'push',
      'run',
      'sign',
      'trace',
      'verify',
    ]);
    expect(complete('run', '--net')).toEqual(['--network']);
    expect(complete('bu')).toEqual(['build']);
    expect(complete('key', '')).toEqual(['generate']);
    expect(complete('key', 'generate', '--na')).toEqual(['--name']);
    expect(complete('build', '--cache-')).toEqual(['--cache-dir', '--cache-registry']);
    expect(complete('build', 'man')).toEqual(['manifest.yaml']);
    expect(complete('build', '-o', 'man')).toEqual(['manifest.yaml']);
    expect(complete('completion', '')).toEqual(['bash', 'fish', 'zsh']);
  });

  it.skipIf(!has('fish'))("fish: the same tree, through fish's own completer", () => {
    const file = script('fish');
    const complete = (line: string) => {
      const r = spawnSync('fish', ['--no-config', '-c', `source ${file}; complete -C ${JSON.stringify(line)}`], {
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[0])
        .sort();
    };
    expect(complete('mkimg bu')).toEqual(['build']);
    expect(complete('mkimg key ')).toEqual(['generate']);
    expect(complete('mkimg key generate --na')).toEqual(['--name']);
    expect(complete('mkimg completion ')).toEqual(['bash', 'fish', 'zsh']);
  });

  it.skipIf(!has('zsh'))('zsh: the script parses and registers _mkimg for mkimg with compinit', () => {
    const file = script('zsh');
    expect(spawnSync('zsh', ['-n', file]).status).toBe(0);
    const r = spawnSync(
      'zsh',
      [
        '-f',
        '-c',
        `autoload -U compinit && compinit -u -D && source ${file} && print -r -- $_comps[mkimg] && whence -w _mkimg_key_generate`,
      ],
      { encoding: 'utf8', env: { ...process.env, HOME: work } },
    );
    expect(r.stdout, r.stderr).toBe('_mkimg\n_mkimg_key_generate: function\n');
  });
});
