/**
 * Wire format of `SITE VIEW <file>`: the first bytes of a file in a multi-line 200 reply.
 *
 *     200-VIEW text bytes=12 size=12 eol=lf
 *      hello world
 *     200 VIEW end
 *
 * Readable in a raw telnet session, yet lossless: `decodePreview` rebuilds the exact bytes.
 * Every content line starts with one space, so none can look like a reply code and end
 * the reply early, and no line carries a raw control character (C0, DEL, C1, CR, LF).
 *
 * Text mode: one content line per file line, with escapes `\\` `\t` `\r` `\xHH` and
 * `\&` (stands for nothing; appended to a line that would otherwise be blank, because
 * basic-ftp drops blank reply lines). The decoder joins the lines with the declared
 * eol, puts the eol after every line and keeps the first `bytes` bytes, which settles
 * whether the shown part ends with a newline.
 * Hex mode: `hexdump -C` lines; only the offset and hex columns are decoded.
 */

/** Most bytes a preview shows; the server reads min(PREVIEW_LIMIT, size) bytes. */
export const PREVIEW_LIMIT = 1024;

/** `text`: escaped lines for readable content; `hex`: a hexdump for binary content. */
export type PreviewMode = 'text' | 'hex';

/**
 * One reply line. `raw: false` lines get the reply code from the server (`200-` for the
 * header, `200 ` for the final `VIEW end`); `raw: true` content lines are sent as they are.
 */
export type PreviewLine = { text: string; raw: boolean };

/** What a client gets back from a reply: the mode used, the exact bytes shown, the file size. */
export interface DecodedPreview {
  mode: PreviewMode;
  bytes: Buffer;
  fileSize: number;
}

const END = 'VIEW end';
const LF = Buffer.from('\n');
const CRLF = Buffer.from('\r\n');
const EMPTY_ESCAPE = '\\&';

/**
 * Encodes the reply lines for a file of `fileSize` bytes whose first bytes are `head`
 * (normally min(PREVIEW_LIMIT, fileSize) of them; fewer if the file shrank meanwhile).
 */
export function encodePreview(head: Buffer, fileSize: number): PreviewLine[] {
  if (head.length > PREVIEW_LIMIT || !Number.isSafeInteger(fileSize) || fileSize < head.length) {
    throw new RangeError(`encodePreview: ${head.length} bytes shown of a file of size ${fileSize}`);
  }
  const mode = chooseMode(head, head.length < fileSize);
  let header = `VIEW ${mode} bytes=${head.length} size=${fileSize}`;
  const content: string[] = [];
  if (mode === 'hex') {
    content.push(...renderHexDump(head).map((line) => ' ' + line));
  } else {
    const crlf = isCrlf(head);
    header += crlf ? ' eol=crlf' : ' eol=lf';
    for (const line of splitLines(head, crlf)) {
      const text = escapeLine(line);
      // basic-ftp drops lines for which trim() is empty: make such lines visible.
      content.push(' ' + text + (text.trim() === '' ? EMPTY_ESCAPE : ''));
    }
  }
  return [
    { text: header, raw: false },
    ...content.map((text) => ({ text, raw: true })),
    { text: END, raw: false },
  ];
}

/**
 * Decodes a whole reply as the client received it: lines separated by CRLF or LF,
 * with or without the `200-` / `200 ` codes on the header and end lines (basic-ftp's
 * `response.message` keeps them). Throws "not a SITE VIEW reply: …" on anything malformed.
 */
export function decodePreview(reply: string): DecodedPreview {
  const lines = reply.split(/\r?\n/);
  if (lines.length > 1 && lines.at(-1) === '') lines.pop();
  const head = /^(?:200-)?VIEW (text|hex) bytes=(\d+) size=(\d+)(?: eol=(lf|crlf))?$/.exec(lines.shift() ?? '');
  if (!head) fail('missing or malformed "200-VIEW" header line');
  const [, modeName, shown = '', size = '', eol] = head;
  const mode = modeName as PreviewMode;
  if ((mode === 'text') !== (eol !== undefined)) fail(`eol= is required in text mode and only there`);
  const footer = lines.pop();
  if (footer !== `200 ${END}` && footer !== END) fail(`missing "200 ${END}" line`);
  const bytesShown = Number(shown);
  const fileSize = Number(size);
  if (!Number.isSafeInteger(fileSize) || bytesShown > fileSize) fail(`bytes=${shown} exceeds size=${size}`);

  const content = lines.map((line, i) => {
    if (!line.startsWith(' ')) fail(`content line ${i + 1} does not start with a space: ${JSON.stringify(line)}`);
    return line.slice(1);
  });
  let bytes: Buffer;
  if (mode === 'hex') {
    bytes = decodeHexDump(content);
  } else {
    const eolBytes = eol === 'crlf' ? CRLF : LF;
    const joined = Buffer.concat(content.flatMap((line) => [unescapeLine(line), eolBytes]));
    // Only the final eol (or part of it) may be cut off by bytes=.
    if (joined.length - bytesShown > eolBytes.length) fail(`bytes=${shown} but the lines hold more`);
    bytes = joined.subarray(0, bytesShown);
  }
  if (bytes.length !== bytesShown) fail(`byte count mismatch: bytes=${shown} but the lines hold ${bytes.length}`);
  return { mode, bytes, fileSize };
}

/** `hexdump -C` style lines (without the leading space): offset, 16 hex bytes, ascii column. */
export function renderHexDump(bytes: Buffer): string[] {
  const lines: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    lines.push(hexLine(offset, bytes.subarray(offset, offset + 16)));
  }
  return lines;
}

function fail(reason: string): never {
  throw new Error(`not a SITE VIEW reply: ${reason}`);
}

/**
 * Length of the well-formed UTF-8 sequence starting at `i` (1 for ASCII), 0 if the
 * byte there cannot start one, or -1 if it is a valid start cut off by the buffer end.
 */
function utf8Length(b: Buffer, i: number): number {
  const lead = b[i]!;
  if (lead < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) n = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    if (lead === 0xe0) lo = 0xa0; // no overlong forms
    if (lead === 0xed) hi = 0x9f; // no surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    if (lead === 0xf0) lo = 0x90; // no overlong forms
    if (lead === 0xf4) hi = 0x8f; // nothing above U+10FFFF
  } else return 0;
  for (let k = 1; k < n; k++) {
    if (i + k >= b.length) return -1;
    const byte = b[i + k]!;
    if (byte < (k === 1 ? lo : 0x80) || byte > (k === 1 ? hi : 0xbf)) return 0;
  }
  return n;
}

/** True for a C0 control byte, DEL, or the 2-byte UTF-8 form of a C1 control (U+0080–U+009F). */
function isControl(b: Buffer, i: number, n: number): boolean {
  const lead = b[i]!;
  return lead < 0x20 || lead === 0x7f || (n === 2 && lead === 0xc2 && b[i + 1]! <= 0x9f);
}

/**
 * Hex for a NUL, for invalid UTF-8 (a sequence cut at the end only counts as invalid
 * when the file really ends there), or when more than 10% of the bytes would be shown
 * as `\xHH` (tab, CR, LF and backslash have short escapes and do not count).
 */
function chooseMode(head: Buffer, cut: boolean): PreviewMode {
  let hexEscaped = 0;
  for (let i = 0; i < head.length; ) {
    const n = utf8Length(head, i);
    if (head[i] === 0 || n === 0 || (n < 0 && !cut)) return 'hex';
    if (n < 0) {
      hexEscaped += head.length - i;
      break;
    }
    const c = head[i]!;
    if (c !== 0x09 && c !== 0x0a && c !== 0x0d && isControl(head, i, n)) hexEscaped += n;
    i += n;
  }
  return hexEscaped * 10 > head.length ? 'hex' : 'text';
}

/** eol=crlf when there is at least one LF and every LF follows a CR. */
function isCrlf(head: Buffer): boolean {
  let sawLf = false;
  for (let i = 0; i < head.length; i++) {
    if (head[i] !== 0x0a) continue;
    if (i === 0 || head[i - 1] !== 0x0d) return false;
    sawLf = true;
  }
  return sawLf;
}

/**
 * Splits at each LF (CRLF when `crlf`), dropping the empty piece after a final newline.
 * Any other CR stays in a line and is escaped, so splitting is exact, also for "\r\r\n"
 * or a CR cut off from its LF at the end of the head.
 */
function splitLines(head: Buffer, crlf: boolean): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < head.length; i++) {
    if (head[i] !== 0x0a) continue;
    lines.push(head.subarray(start, crlf ? i - 1 : i));
    start = i + 1;
  }
  if (start < head.length) lines.push(head.subarray(start));
  return lines;
}

function hex2(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

/** One line of bytes (no LF) as text: UTF-8 characters, except escapes for everything unsafe. */
function escapeLine(line: Buffer): string {
  let out = '';
  for (let i = 0; i < line.length; ) {
    const c = line[i]!;
    const n = utf8Length(line, i);
    if (c === 0x5c) out += '\\\\';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0d) out += '\\r';
    else if (n <= 0) out += '\\x' + hex2(c);
    else if (isControl(line, i, n)) for (let k = 0; k < n; k++) out += '\\x' + hex2(line[i + k]!);
    else out += line.toString('utf8', i, i + n);
    i += Math.max(n, 1);
  }
  return out;
}

/** Inverse of escapeLine; rejects unknown escapes and raw control characters. */
function unescapeLine(text: string): Buffer {
  const parts: Buffer[] = [];
  let literal = '';
  const flush = (bytes: number[]) => {
    parts.push(Buffer.from(literal, 'utf8'), Buffer.from(bytes));
    literal = '';
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const code = ch.charCodeAt(0);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) fail(`raw control character U+${code.toString(16).padStart(4, '0')}`);
    if (ch !== '\\') {
      literal += ch;
      continue;
    }
    const esc = text[++i];
    if (esc === '\\') flush([0x5c]);
    else if (esc === 't') flush([0x09]);
    else if (esc === 'r') flush([0x0d]);
    else if (esc === '&') flush([]);
    else if (esc === 'x' && /^[0-9a-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      flush([parseInt(text.slice(i + 1, i + 3), 16)]);
      i += 2;
    } else fail(`bad escape ${JSON.stringify('\\' + text.slice(i, i + 3))}`);
  }
  flush([]);
  return Buffer.concat(parts);
}

function hexLine(offset: number, chunk: Buffer): string {
  const cells = Array.from({ length: 16 }, (_, k) => (k < chunk.length ? hex2(chunk[k]!) : '  '));
  const ascii = Array.from(chunk, (byte) => (byte >= 0x20 && byte <= 0x7e ? String.fromCharCode(byte) : '.')).join('');
  return `${offset.toString(16).padStart(8, '0')}  ${cells.slice(0, 8).join(' ')}  ${cells.slice(8).join(' ')}  |${ascii}|`;
}

/** Reads bytes from the offset and hex columns; the line must then be exactly what renderHexDump makes. */
function decodeHexDump(lines: string[]): Buffer {
  const out: number[] = [];
  for (const line of lines) {
    const offset = out.length;
    if (offset % 16 !== 0 || line.slice(0, 8) !== offset.toString(16).padStart(8, '0')) {
      fail(`expected a hex line at offset ${offset}: ${JSON.stringify(line)}`);
    }
    const chunk: number[] = [];
    for (let k = 0; k < 16; k++) {
      const at = 10 + 3 * k + (k >= 8 ? 1 : 0);
      const cell = line.slice(at, at + 2);
      if (!/^[0-9a-f]{2}$/.test(cell)) break;
      chunk.push(parseInt(cell, 16));
    }
    if (chunk.length === 0 || line !== hexLine(offset, Buffer.from(chunk))) fail(`bad hex line ${JSON.stringify(line)}`);
    out.push(...chunk);
  }
  return Buffer.from(out);
}
