/**
 * The end of a command. Node.js exits by itself once nothing is left to run,
 * but first tears its heap down piece by piece: after a build, 20-40 ms of
 * the command's wall time for nothing. When a command is done and nothing
 * is pending (no timer, file request, child process, worker or socket: only
 * stdout and stderr, once every write to them is flushed), exit() leaves at
 * once, with the same exit code and the same 'exit' handlers run. Anything
 * still pending gets the ordinary exit, after it.
 */
export function exitWhenIdle(): void {
  // After the microtasks the command's last await left, and this turn's I/O callbacks.
  setImmediate(() => {
    // Output still on its way to a pipe (a reader slower than the command): checked again once it is out.
    const flushing = [process.stdout, process.stderr].find((s) => s.writableLength > 0);
    if (flushing) flushing.once('drain', exitWhenIdle);
    else if (idle()) process.exit();
  });
}

function idle(): boolean {
  const stdio = [process.stdout, process.stderr];
  // What keeps the event loop alive, less one handle per stdio stream that has one (a pipe or a terminal).
  const left = process.getActiveResourcesInfo();
  for (const s of stdio) {
    const type = (s as { _handle?: { constructor?: { name?: string } } })._handle?.constructor?.name;
    const i = type === undefined ? -1 : left.indexOf(`${type}Wrap`);
    if (i >= 0) left.splice(i, 1);
  }
  return left.length === 0;
}
