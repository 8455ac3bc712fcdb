/**
 * A line diff (the HTML report's changed text files, `mkimg diff`'s text
 * diffs): Myers' O((N+M)·D)
 * shortest edit script, after trimming the common head and tail, grouped
 * into unified-diff hunks. Bounded: past `maxEdits` edits it gives up (the
 * page then says the files are too different to show), so a rewritten file
 * costs at most O((N+M)·maxEdits) time and O(maxEdits²) memory.
 */

/** One hunk: where it starts in each file (1-based) and its lines, each prefixed with ' ', '-' or '+'. */
export interface Hunk {
  a: number;
  b: number;
  lines: string[];
}

type Op = [' ' | '-' | '+', number, number]; // op, index in a, index in b

/** The edit script between a and b, or undefined when it needs more than maxEdits edits. */
export function editScript(a: string[], b: string[], maxEdits = 1000): Op[] | undefined {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const A = a.slice(head, a.length - tail);
  const B = b.slice(head, b.length - tail);
  const mid = myers(A, B, maxEdits);
  if (!mid) return undefined;
  const out: Op[] = [];
  for (let i = 0; i < head; i++) out.push([' ', i, i]);
  for (const [op, x, y] of mid) out.push([op, x + head, y + head]);
  for (let i = 0; i < tail; i++) out.push([' ', a.length - tail + i, b.length - tail + i]);
  return out;
}

function myers(a: string[], b: string[], maxEdits: number): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  if (n === 0 && m === 0) return [];
  const limit = Math.min(n + m, maxEdits);
  // v[k] for diagonals -d..d lives at index k + off; trace[d] is v before step d.
  const off = limit + 1;
  const v = new Int32Array(2 * limit + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d++) {
    trace.push(v.slice(off - d - 1, off + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, d, n, m);
    }
  }
  return undefined;
}

function backtrack(trace: Int32Array[], dEnd: number, n: number, m: number): Op[] {
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = dEnd; d >= 0; d--) {
    const vp = trace[d];
    const at = (k: number) => vp[k + d + 1]; // trace[d] holds diagonals -d-1..d+1
    const k = x - y;
    const prevK = d === 0 ? 0 : k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      ops.push([' ', x, y]);
    }
    if (d === 0) break;
    if (x === prevX) ops.push(['+', x, prevY]);
    else ops.push(['-', prevX, y]);
    x = prevX;
    y = prevY;
  }
  return ops.reverse();
}

function splitLines(s: string): string[] {
  if (s === '') return [];
  const lines = s.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Unified-diff hunks between two texts with `context` lines around each change; undefined when too different. */
export function lineDiff(a: string, b: string, context = 3, maxEdits = 1000): Hunk[] | undefined {
  return lineHunks(splitLines(a), splitLines(b), context, maxEdits);
}

/** lineDiff over texts already split into lines. */
export function lineHunks(la: string[], lb: string[], context = 3, maxEdits = 1000): Hunk[] | undefined {
  const ops = editScript(la, lb, maxEdits);
  if (!ops) return undefined;
  const hunks: Hunk[] = [];
  const changes = ops.map((o, i) => (o[0] !== ' ' ? i : -1)).filter((i) => i >= 0);
  let i = 0;
  while (i < changes.length) {
    const start = Math.max(0, changes[i] - context);
    let end = Math.min(ops.length, changes[i] + context + 1);
    while (i + 1 < changes.length && changes[i + 1] - context <= end) {
      i++;
      end = Math.min(ops.length, changes[i] + context + 1);
    }
    i++;
    const first = ops[start];
    hunks.push({
      a: first[1] + 1,
      b: first[2] + 1,
      lines: ops.slice(start, end).map(([op, x, y]) => op + (op === '+' ? lb[y] : la[x])),
    });
  }
  return hunks;
}
