/** A one-line byte counter on stderr, redrawn at most every 200 ms; silent when disabled. */
export class Progress {
  private done = 0;
  private last = 0;
  private drawn = false;
  constructor(
    private readonly enabled: boolean,
    private readonly label: string,
    private total: number,
  ) {}

  add(n: number): void {
    this.done += n;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 200) return;
    this.last = now;
    this.draw();
  }

  setTotal(total: number): void {
    this.total = total;
  }

  private draw(): void {
    const mb = (n: number) => (n / 1e6).toFixed(1);
    process.stderr.write(`\r\x1b[K${this.label}: ${mb(this.done)} / ${mb(this.total)} MB`);
    this.drawn = true;
  }

  finish(): void {
    if (this.enabled && this.drawn) process.stderr.write('\r\x1b[K');
  }
}
