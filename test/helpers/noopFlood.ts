import { connect, type Socket } from 'node:net';

/** The line that ends a flood: an unknown verb, answered 502, so the last reply is recognisable. */
export const FLOOD_END = 'XFLOODEND';

/** One `NOOP\r\n` repeated `count` times, then FLOOD_END (shared by every flood connection: written, not copied). */
export function floodPayload(count: number): Buffer {
  return Buffer.concat([Buffer.from('NOOP\r\n'.repeat(count)), Buffer.from(`${FLOOD_END}\r\n`)]);
}

/**
 * A control connection that pipelines a payload of NOOPs before logging in (the issue 7
 * out-of-memory reproduction) and checks the replies as they stream in without keeping
 * them: the 220 greeting, then one 200 per NOOP, then 502 for FLOOD_END, nothing else.
 * `read: false` leaves the replies unread in the kernel (the server's writes then stall)
 * until resume().
 */
export class NoopFlood {
  /** NOOP replies (200) received so far. */
  ok = 0;
  /** The greeting arrived. */
  greeted = false;
  /** FLOOD_END's 502 arrived, after exactly `count` 200s. */
  done = false;
  /** The first reply line that was not what the sequence expects (with its position). */
  unexpected: string | undefined;
  closed = false;
  private partial = '';

  private constructor(
    readonly socket: Socket,
    readonly count: number,
  ) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  /** Connects and writes `payload` (from floodPayload(count)) at once, without waiting for anything. */
  static open(port: number, count: number, payload: Buffer, options: { read?: boolean; host?: string } = {}): Promise<NoopFlood> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: options.host ?? '127.0.0.1' });
      const flood = new NoopFlood(socket, count);
      if (options.read === false) socket.pause();
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.write(payload);
        resolve(flood);
      });
    });
  }

  /** Starts reading the replies (after `read: false`). */
  resume(): void {
    this.socket.resume();
  }

  /** Waits until the flood's last reply arrived, it failed, or `timeoutMs` passed; returns done. */
  async finished(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.done && !this.unexpected && !this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.done;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(data: string): void {
    const text = this.partial + data;
    let start = 0;
    for (let end = text.indexOf('\r\n'); end !== -1; end = text.indexOf('\r\n', start)) {
      this.onLine(text.slice(start, end));
      start = end + 2;
    }
    this.partial = text.slice(start);
  }

  private onLine(line: string): void {
    if (this.unexpected) return;
    const at = `reply ${this.ok + (this.greeted ? 1 : 0)}`;
    if (!this.greeted) {
      if (line.startsWith('220 ')) this.greeted = true;
      else if (!line.startsWith('220-')) this.unexpected = `${at}: ${line}`;
    } else if (this.done) {
      this.unexpected = `${at} after the end: ${line}`;
    } else if (line.startsWith('200 ') && this.ok < this.count) {
      this.ok++;
    } else if (line.startsWith('502 ') && this.ok === this.count) {
      this.done = true;
    } else {
      this.unexpected = `${at}: ${line}`;
    }
  }
}
