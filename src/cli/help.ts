/**
 * How --help lays out text. Descriptions are written in the source as short
 * lines for the reader of the code; here they are flowed into paragraphs and
 * wrapped at the help width (the terminal's, else 80), so no line breaks
 * early or twice. A line that starts with a list marker (`1.`, `-`) begins
 * an item whose continuation lines hang under its text.
 */
import type { EventEmitter } from 'node:events';
import type { Command, HelpConfiguration } from 'commander';

interface Block {
  /** Printed before the first line: indentation and list marker. */
  first: string;
  /** Printed before every further line. */
  hang: string;
  words: string[];
}

const ITEM = /^(\s*)((?:\d+\.|[-*])\s+)(.*)$/;
/** A line that opens with a label ("Exit codes: …", "Mirror order per suite: …") starts a paragraph. */
const LABEL = /^[A-Z][A-Za-z ]{0,30}:\s/;

/**
 * Join a description's hard-wrapped lines into paragraphs and list items.
 * With `verbatimIndented`, an indented line (an example command) is a block of its own, never joined or wrapped.
 */
function blocks(text: string, verbatimIndented: boolean): (Block | null)[] {
  const out: (Block | null)[] = [];
  let cur: Block | null = null;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      out.push(null);
      cur = null;
      continue;
    }
    const indent = /^\s*/.exec(line)![0];
    const item = ITEM.exec(line);
    if (verbatimIndented && indent.length > 0) {
      out.push({ first: line, hang: '', words: [] });
      cur = null;
    } else if (item) {
      cur = {
        first: item[1] + item[2],
        hang: ' '.repeat(item[1].length + item[2].length),
        words: item[3].split(/\s+/),
      };
      out.push(cur);
    } else if (cur && indent.length === cur.hang.length && !(indent.length === 0 && LABEL.test(line))) {
      cur.words.push(...line.trim().split(/\s+/));
    } else {
      cur = { first: indent, hang: indent, words: line.trim().split(/\s+/) };
      out.push(cur);
    }
  }
  return out;
}

/** Flow `text` at `width` columns: paragraphs refilled, list items with a hanging indent. */
export function flowText(text: string, width: number, opts: { verbatimIndented?: boolean } = {}): string {
  const lines: string[] = [];
  for (const b of blocks(text, opts.verbatimIndented ?? false)) {
    if (b === null) {
      lines.push('');
      continue;
    }
    let line = b.first;
    let empty = true;
    for (const w of b.words.filter(Boolean)) {
      if (!empty && line.length + 1 + w.length > width) {
        lines.push(line);
        line = b.hang + w;
      } else {
        line += (empty ? '' : ' ') + w;
      }
      empty = false;
    }
    lines.push(line);
  }
  return lines.join('\n');
}

/**
 * Text added with addHelpText (examples, notes on exit codes) flows too: its
 * prose paragraphs are refilled at the width commander uses (the terminal's,
 * else 80); indented lines (example commands) are printed as written.
 * Call once every command is registered.
 */
export function flowHelpTexts(cmd: Command): void {
  const emitter = cmd as unknown as EventEmitter; // commander's Command is an EventEmitter; its typings omit it
  for (const event of ['beforeAllHelp', 'beforeHelp', 'afterHelp', 'afterAllHelp']) {
    const listeners = emitter.listeners(event) as ((ctx: {
      error: boolean;
      command: Command;
      write: (s: string) => void;
    }) => void)[];
    emitter.removeAllListeners(event);
    for (const l of listeners) {
      emitter.on(event, (ctx: { error: boolean; command: Command; write: (s: string) => void }) => {
        const stream = ctx.error ? process.stderr : process.stdout;
        const width = (stream.isTTY && stream.columns) || 80;
        l({ ...ctx, write: (s: string) => ctx.write(flowText(s, width, { verbatimIndented: true })) });
      });
    }
  }
  for (const sub of cmd.commands) flowHelpTexts(sub);
}

/** commander's help settings for every command: descriptions flowed at the help width. */
export const HELP_CONFIG: HelpConfiguration = {
  commandDescription(this: { helpWidth?: number }, cmd: Command): string {
    return flowText(cmd.description(), this.helpWidth ?? 80);
  },
};

/**
 * The hint after a usage error names the command the user was typing
 * (`mkimg key generate --help`), found by walking argv through the command tree.
 */
export function usageHint(program: Command, args: string[]): string {
  const path: string[] = [];
  let cmd = program;
  for (const a of args) {
    if (a === '--') break;
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) continue;
    path.push(sub.name());
    cmd = sub;
  }
  return `mkimg: hint: run \`${['mkimg', ...path, '--help'].join(' ')}\` for usage`;
}
