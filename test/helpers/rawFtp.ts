import { connect, type Socket } from 'node:net';

/**
 * How long tests wait for one control reply (and for a data connection to finish).
 * Generous: the suite runs files in parallel on small machines, scrypt verification of PASS
 * can take seconds there, and a slow reply is not what these tests are about.
 */
export const REPLY_MS = 20_000;

/** One complete FTP reply. */
export interface RawReply {
  code: number;
  /** Every line of the reply, without CRLF. */
  lines: string[];
  /** The reply exactly as received, CRLFs included. */
  raw: string;
}

/**
 * A bare control connection for protocol tests: send exact bytes, read complete
 * (multi-line aware) replies, see everything the server sends. Every wait is bounded.
 */
export class RawFtp {
  private buffer = '';
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** Connects and reads the 220 greeting (waiting at most `timeoutMs` for it). */
  static async connect(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<RawFtp> {
    const socket = connect({ port, host });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return RawFtp.over(socket, timeoutMs);
  }

  /**
   * Takes an open control connection (one the test set up itself: another source address,
   * bytes sent before the greeting, TLS) and reads the 220 greeting (at most `timeoutMs`).
   */
  static async over(socket: Socket, timeoutMs = 5000): Promise<RawFtp> {
    const raw = new RawFtp(socket);
    const greeting = await raw.read(timeoutMs).catch((err: unknown) => {
      socket.destroy();
      throw err;
    });
    if (greeting.code !== 220) throw new Error(`unexpected greeting ${greeting.raw}`);
    return raw;
  }

  /** Connects, logs in, and returns the connection (each reply awaited at most `timeoutMs`). */
  static async login(port: number, user: string, password: string, host = '127.0.0.1', timeoutMs = 5000): Promise<RawFtp> {
    const raw = await RawFtp.connect(port, host, timeoutMs);
    await raw.command(`USER ${user}`, timeoutMs);
    const r = await raw.command(`PASS ${password}`, timeoutMs);
    if (r.code !== 230) throw new Error(`login failed: ${r.raw}`);
    return raw;
  }

  /** Writes raw bytes or text (no CRLF added). */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async command(line: string, timeoutMs = 5000): Promise<RawReply> {
    this.socket.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** Reads the next complete reply; rejects after `timeoutMs` or if the connection closes first. */
  async read(timeoutMs = 5000): Promise<RawReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.take();
      if (reply) return reply;
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no complete reply within ${timeoutMs} ms; unread: ${JSON.stringify(this.buffer.slice(0, 500))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves true if nothing more arrives within `ms` (to prove "exactly one reply"). */
  async silentFor(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.buffer.length === 0;
  }

  /** Everything received but not yet consumed. */
  get pending(): string {
    return this.buffer;
  }

  /** Waits until the server closes the connection (bounded). */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (!this.closed) throw new Error('connection still open');
  }

  close(): void {
    this.socket.destroy();
  }

  private take(): RawReply | undefined {
    const lines: string[] = [];
    let pos = 0;
    let code: number | undefined;
    for (;;) {
      const end = this.buffer.indexOf('\r\n', pos);
      if (end === -1) return undefined;
      const line = this.buffer.slice(pos, end);
      lines.push(line);
      pos = end + 2;
      if (code === undefined) {
        const m = /^(\d{3})([ -])/.exec(line);
        if (!m) throw new Error(`malformed reply line ${JSON.stringify(line)}`);
        code = Number(m[1]);
        if (m[2] === ' ') break;
      } else if (line.startsWith(`${code} `)) break;
    }
    const raw = this.buffer.slice(0, pos);
    this.buffer = this.buffer.slice(pos);
    return { code: code!, lines, raw };
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Opens the data connection announced by an EPSV reply (`229 ... (|||port|)`). */
export async function openEpsvData(reply: RawReply, host = '127.0.0.1'): Promise<Socket> {
  const m = /\(\|\|\|(\d+)\|\)/.exec(reply.raw);
  if (!m) throw new Error(`not an EPSV reply: ${reply.raw}`);
  const socket = connect({ port: Number(m[1]), host });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}
