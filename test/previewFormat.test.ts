import test, { type ExecutionContext } from 'ava';
import { parseControlResponse } from 'basic-ftp/dist/parseControlResponse.js';
import {
  PREVIEW_LIMIT,
  decodePreview,
  encodePreview,
  renderHexDump,
  type PreviewLine,
  type PreviewMode,
} from '../src/preview/previewFormat.js';

/** The reply lines as ftp-srv sends them: codes on the non-raw lines. */
function wire(lines: PreviewLine[]): string[] {
  return lines.map((line, i) => (line.raw ? line.text : (i === lines.length - 1 ? '200 ' : '200-') + line.text));
}

/** What basic-ftp hands the caller as `response.message` for this reply. */
function basicFtpMessage(wireLines: string[]): string {
  const parsed = parseControlResponse(wireLines.join('\r\n') + '\r\n');
  if (parsed.messages.length !== 1 || parsed.rest !== '') throw new Error(`basic-ftp split the reply: ${JSON.stringify(parsed)}`);
  return parsed.messages[0]!;
}

/** Problems with one encoding: unsafe lines, or any client form of the reply not decoding exactly. */
function problems(head: Buffer, fileSize: number): string[] {
  const lines = encodePreview(head, fileSize);
  const wireLines = wire(lines);
  const found: string[] = [];
  for (const line of wireLines) {
    if (/[\u0000-\u001f\u007f-\u009f]/.test(line)) found.push(`control character in ${JSON.stringify(line)}`);
    if (line.trim() === '') found.push('blank line');
  }
  for (const line of lines.slice(1, -1)) {
    if (!line.raw || !line.text.startsWith(' ')) found.push(`content line without leading space ${JSON.stringify(line.text)}`);
    if (/^\d/.test(line.text)) found.push(`content line starts with a digit ${JSON.stringify(line.text)}`);
  }
  const stripped = [lines[0]!.text, ...wireLines.slice(1, -1), lines.at(-1)!.text];
  const forms = {
    crlf: wireLines.join('\r\n') + '\r\n',
    lf: wireLines.join('\n'),
    basicFtp: basicFtpMessage(wireLines),
    noCodes: stripped.join('\n'),
  };
  for (const [form, reply] of Object.entries(forms)) {
    const decoded = decodePreview(reply);
    if (!decoded.bytes.equals(head)) found.push(`${form}: bytes differ: ${decoded.bytes.toString('hex')}`);
    if (decoded.fileSize !== fileSize) found.push(`${form}: fileSize ${decoded.fileSize}`);
    if (decoded.mode !== (lines[0]!.text.startsWith('VIEW hex') ? 'hex' : 'text')) found.push(`${form}: mode`);
  }
  return found;
}

function check(t: ExecutionContext, head: Buffer, fileSize: number, mode: PreviewMode, expected?: string[]): string[] {
  const wireLines = wire(encodePreview(head, fileSize));
  t.deepEqual(problems(head, fileSize), []);
  t.is(decodePreview(wireLines.join('\r\n')).mode, mode);
  if (expected) t.deepEqual(wireLines, expected);
  return wireLines;
}

const b = (s: string) => Buffer.from(s, 'utf8');
const hb = (hex: string) => Buffer.from(hex.replace(/\s/g, ''), 'hex');

test('empty file: header and end only', (t) => {
  check(t, b(''), 0, 'text', ['200-VIEW text bytes=0 size=0 eol=lf', '200 VIEW end']);
});

test('"hello\\n" and "hello" differ only in bytes=', (t) => {
  check(t, b('hello\n'), 6, 'text', ['200-VIEW text bytes=6 size=6 eol=lf', ' hello', '200 VIEW end']);
  check(t, b('hello'), 5, 'text', ['200-VIEW text bytes=5 size=5 eol=lf', ' hello', '200 VIEW end']);
});

test('a lone newline is one empty line, marked so it is not blank', (t) => {
  check(t, b('\n'), 1, 'text', ['200-VIEW text bytes=1 size=1 eol=lf', ' \\&', '200 VIEW end']);
  check(t, b('a\n\nb\n'), 5, 'text', ['200-VIEW text bytes=5 size=5 eol=lf', ' a', ' \\&', ' b', '200 VIEW end']);
});

test('CRLF everywhere: eol=crlf and the CRs are not shown', (t) => {
  check(t, b('one\r\ntwo\r\n\r\nthree'), 17, 'text', [
    '200-VIEW text bytes=17 size=17 eol=crlf',
    ' one',
    ' two',
    ' \\&',
    ' three',
    '200 VIEW end',
  ]);
});

test('mixed CRLF and LF: eol=lf and CRs escaped', (t) => {
  check(t, b('a\r\nb\nc\r\n'), 8, 'text', ['200-VIEW text bytes=8 size=8 eol=lf', ' a\\r', ' b', ' c\\r', '200 VIEW end']);
});

test('lone CRs', (t) => {
  check(t, b('a\rb'), 3, 'text', ['200-VIEW text bytes=3 size=3 eol=lf', ' a\\rb', '200 VIEW end']);
  check(t, b('x\r\r\ny\r\n'), 7, 'text', ['200-VIEW text bytes=7 size=7 eol=crlf', ' x\\r', ' y', '200 VIEW end']);
  check(t, b('a\r\nb\r'), 5, 'text', ['200-VIEW text bytes=5 size=5 eol=crlf', ' a', ' b\\r', '200 VIEW end']);
});

test('CRLF file cut between CR and LF at byte 1024', (t) => {
  const file = b('abc\r\n'.repeat(205));
  const head = file.subarray(0, PREVIEW_LIMIT);
  t.is(head.at(-1), 0x0d);
  const lines = check(t, head, file.length, 'text');
  t.is(lines[0], '200-VIEW text bytes=1024 size=1025 eol=crlf');
  t.is(lines.length, 2 + 205);
  t.is(lines.at(-2), ' abc\\r');
});

test('tabs, ESC and backslashes are escaped', (t) => {
  check(t, b('\tx\x1b[31mred\x1b[0m C:\\dir\n'), 22, 'text', [
    '200-VIEW text bytes=22 size=22 eol=lf',
    ' \\tx\\x1b[31mred\\x1b[0m C:\\\\dir',
    '200 VIEW end',
  ]);
});

test('more than 10% \\xHH escapes switches to hex', (t) => {
  check(t, b('123456789\x07'), 10, 'text', ['200-VIEW text bytes=10 size=10 eol=lf', ' 123456789\\x07', '200 VIEW end']);
  check(t, b('12345678\x07'), 9, 'hex');
  check(t, b('\\\\\\\t\t\t\r\r\n\n'), 10, 'text'); // short escapes do not count
});

test('a NUL byte gives hex', (t) => {
  check(t, b('ab\0cd'), 5, 'hex', [
    '200-VIEW hex bytes=5 size=5',
    ' 00000000  61 62 00 63 64                                    |ab.cd|',
    '200 VIEW end',
  ]);
});

test('PNG header gives a hexdump -C layout', (t) => {
  const png = hb('89504e470d0a1a0a 0000000d49484452 00000100');
  check(t, png, 5000, 'hex', [
    '200-VIEW hex bytes=20 size=5000',
    ' 00000000  89 50 4e 47 0d 0a 1a 0a  00 00 00 0d 49 48 44 52  |.PNG........IHDR|',
    ' 00000010  00 00 01 00                                       |....|',
    '200 VIEW end',
  ]);
  t.deepEqual(renderHexDump(png.subarray(0, 8)), ['00000000  89 50 4e 47 0d 0a 1a 0a                           |.PNG....|']);
});

test('hex decoding ignores an ascii column with | and hex-looking text', (t) => {
  check(t, b('\0|00 11 22|\0 ff ff ff ff ff ff ff ff ff|'), 40, 'hex');
});

test('UTF-8 text cut at byte 1024 inside a character', (t) => {
  const file = b('é日本語😀 abc\n'.repeat(60));
  const head = file.subarray(0, PREVIEW_LIMIT);
  const lines = check(t, head, file.length, 'text');
  t.is(lines[0], `200-VIEW text bytes=1024 size=${file.length} eol=lf`);
  t.is(lines[1], ' é日本語😀 abc');
  t.is(lines.at(-2), ' é\\xe6\\x97');
  // The same bytes as a whole file end in invalid UTF-8.
  check(t, head, head.length, 'hex');
});

test('exactly 1024 bytes, and the first 1024 of a 1025-byte file', (t) => {
  check(t, b('x'.repeat(1023) + '\n'), 1024, 'text', ['200-VIEW text bytes=1024 size=1024 eol=lf', ' ' + 'x'.repeat(1023), '200 VIEW end']);
  const file = b('a'.repeat(1024) + 'b');
  check(t, file.subarray(0, 1024), 1025, 'text', ['200-VIEW text bytes=1024 size=1025 eol=lf', ' ' + 'a'.repeat(1024), '200 VIEW end']);
});

test('spaces: a one-space line, whitespace-only lines and leading spaces', (t) => {
  check(t, b(' \n   \n  indented\n\u3000\n'), 21, 'text', [
    '200-VIEW text bytes=21 size=21 eol=lf',
    '  \\&',
    '    \\&',
    '   indented',
    ' \u3000\\&',
    '200 VIEW end',
  ]);
});

test('content that looks like a reply code stays content', (t) => {
  const text = '200 VIEW end\n200-VIEW hex bytes=1 size=1\n123 go\n';
  const lines = check(t, b(text), Buffer.byteLength(text), 'text', [
    '200-VIEW text bytes=48 size=48 eol=lf',
    ' 200 VIEW end',
    ' 200-VIEW hex bytes=1 size=1',
    ' 123 go',
    '200 VIEW end',
  ]);
  t.is(basicFtpMessage(lines), lines.join('\n'));
});

test('C1 control U+0085 is escaped byte by byte', (t) => {
  const text = 'next line\u0085is here and long enough\n';
  check(t, b(text), 35, 'text', ['200-VIEW text bytes=35 size=35 eol=lf', ' next line\\xc2\\x85is here and long enough', '200 VIEW end']);
});

test('invalid UTF-8 in the middle gives hex', (t) => {
  check(t, Buffer.concat([b('plain text '), hb('ff'), b(' more text')]), 22, 'hex');
  check(t, Buffer.concat([b('overlong '), hb('c0af'), b(' slash')]), 17, 'hex');
  check(t, Buffer.concat([b('surrogate '), hb('eda080'), b(' here')]), 18, 'hex');
});

test('encodePreview rejects inconsistent arguments', (t) => {
  t.throws(() => encodePreview(b('abc'), 2), { instanceOf: RangeError });
  t.throws(() => encodePreview(Buffer.alloc(PREVIEW_LIMIT + 1), 5000), { instanceOf: RangeError });
});

test('decodePreview rejects malformed replies', (t) => {
  const bad = {
    'no header': ' hello\r\n200 VIEW end',
    'bad mode': '200-VIEW octal bytes=1 size=1\n 1\n200 VIEW end',
    'no eol in text mode': '200-VIEW text bytes=5 size=5\n hello\n200 VIEW end',
    'no end line': '200-VIEW text bytes=5 size=5 eol=lf\n hello',
    'too few bytes': '200-VIEW text bytes=7 size=7 eol=lf\n hello\n200 VIEW end',
    'too many bytes': '200-VIEW text bytes=3 size=7 eol=lf\n hello\n200 VIEW end',
    'bytes above size': '200-VIEW text bytes=6 size=5 eol=lf\n hello\n200 VIEW end',
    'bad escape': '200-VIEW text bytes=5 size=5 eol=lf\n he\\qo\n200 VIEW end',
    'short \\x escape': '200-VIEW text bytes=2 size=2 eol=lf\n \\x4\n200 VIEW end',
    'no leading space': '200-VIEW text bytes=5 size=5 eol=lf\nhello\n200 VIEW end',
    'raw tab': '200-VIEW text bytes=3 size=3 eol=lf\n a\tb\n200 VIEW end',
    'bad hex digits': '200-VIEW hex bytes=2 size=2\n 00000000  6g 62                                            |ab|\n200 VIEW end',
    'wrong hex offset': '200-VIEW hex bytes=2 size=2\n 00000010  61 62                                            |ab|\n200 VIEW end',
    'misaligned hex line': '200-VIEW hex bytes=2 size=2\n 00000000  61 62                                          |ab|\n200 VIEW end',
    'hex byte count': '200-VIEW hex bytes=3 size=3\n 00000000  61 62                                            |ab|\n200 VIEW end',
  };
  for (const [name, reply] of Object.entries(bad)) {
    t.throws(() => decodePreview(reply), { message: /^not a SITE VIEW reply: / }, name);
  }
});

/** mulberry32: small seeded PRNG so failures are reproducible. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test('random buffers round-trip exactly and produce safe lines', (t) => {
  const random = prng(20240611);
  const int = (n: number) => Math.floor(random() * n);
  const pieces = ['a', 'word', ' ', '  ', '\n', '\n', '\r\n', '\r\n', '\r', '\t', '\\', '|', 'é', '日本語', '😀', '\u3000', '200 VIEW end', '0'];
  const rare = ['\x1b', '\u0085', '\x7f', '\x00'];
  const seen = new Map<string, number>(); // header kinds: "text lf", "text crlf", "hex"
  const count = (kind: string) => seen.set(kind, (seen.get(kind) ?? 0) + 1);
  const failures: string[] = [];
  for (let round = 0; round < 300; round++) {
    let file: Buffer;
    const length = int(PREVIEW_LIMIT + 1);
    if (round % 3 === 0) {
      file = Buffer.from(Array.from({ length }, () => int(256)));
    } else {
      const crlfOnly = round % 3 === 2;
      let text = '';
      while (Buffer.byteLength(text) < length) {
        const piece = (random() < 0.01 ? rare[int(rare.length)] : pieces[int(pieces.length)])!;
        text += crlfOnly && piece === '\n' ? '\r\n' : piece;
      }
      file = b(text);
    }
    // The head of a longer file (maybe cut inside a character), or the whole file.
    const whole = random() < 0.5 && file.length <= PREVIEW_LIMIT;
    const head = whole ? file : file.subarray(0, length);
    const fileSize = file.length;
    try {
      failures.push(...problems(head, fileSize).map((p) => `round ${round}: ${p}`));
      const header = encodePreview(head, fileSize)[0]!.text;
      count(header.startsWith('VIEW hex') ? 'hex' : `text ${header.split('eol=')[1]}`);
      if (header.startsWith('VIEW text') && /\\x[c-f][0-9a-f](\\x[89ab][0-9a-f])*$/.test(wire(encodePreview(head, fileSize)).at(-2)!)) count('cut');
    } catch (error) {
      failures.push(`round ${round} (${head.toString('hex')}): ${String(error)}`);
    }
  }
  t.deepEqual(failures, []);
  const kinds = JSON.stringify(Object.fromEntries(seen));
  t.true(['text lf', 'text crlf', 'hex', 'cut'].every((kind) => (seen.get(kind) ?? 0) >= 10), kinds);
  t.log(kinds);
});
