import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePreview, PREVIEW_LIMIT } from '../src/preview/previewFormat.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { requireTool, run, sha256, tempsUnder } from './helpers/interop.js';

/**
 * Issue 2, point 12: Python 3's ftplib (Debian package "python3") against the server:
 * login, storbinary, nlst, SITE VIEW via sendcmd, retrbinary, delete, quit — with PASV
 * (ftplib's default over IPv4) and with EPSV.
 */

/**
 * argv: port user password mode(PASV|EPSV|BADLOGIN) phase(up|down) workdir name...
 * Phase "up": uploads each workdir/name, lists, views and downloads (to workdir/got-name)
 * each, quits. Phase "down": deletes each, lists, quits. Prints one JSON object with
 * every reply and the commands sent.
 */
const SCRIPT = String.raw`
import ftplib, json, os, sys
port, user, password, mode, phase, workdir = sys.argv[1:7]
names = sys.argv[7:]

class Client(ftplib.FTP):
    def __init__(self):
        super().__init__()
        self.sent = []
    def putcmd(self, line):
        self.sent.append(line.split(' ')[0].upper())
        super().putcmd(line)
    def makepasv(self):
        if mode == 'EPSV':
            return ftplib.parse229(self.sendcmd('EPSV'), self.sock.getpeername())
        return super().makepasv()

out = {}
ftp = Client()
out['welcome'] = ftp.connect('127.0.0.1', int(port), timeout=15)
if mode == 'BADLOGIN':
    try:
        ftp.login(user, password)
        out['login'] = 'accepted'
    except ftplib.error_perm as e:
        out['login'] = str(e)
    ftp.close()
    print(json.dumps(out))
    sys.exit(0)
out['login'] = ftp.login(user, password)
if phase == 'up':
    out['stor'] = {}
    for name in names:
        with open(os.path.join(workdir, name), 'rb') as f:
            out['stor'][name] = ftp.storbinary('STOR ' + name, f)
    out['nlst'] = ftp.nlst()
    out['view'] = {}
    out['retr'] = {}
    out['size'] = {}
    for name in names:
        out['view'][name] = ftp.sendcmd('SITE VIEW ' + name)
        with open(os.path.join(workdir, 'got-' + name), 'wb') as f:
            out['retr'][name] = ftp.retrbinary('RETR ' + name, f.write)
        out['size'][name] = ftp.size(name)
else:
    out['delete'] = {}
    for name in names:
        out['delete'][name] = ftp.delete(name)
    try:
        ftp.delete(names[0])
        out['delete_again'] = 'accepted'
    except ftplib.error_perm as e:
        out['delete_again'] = str(e)
    out['nlst_after'] = ftp.nlst()
out['quit'] = ftp.quit()
out['sent'] = ftp.sent
print(json.dumps(out))
`;

interface ScriptResult {
  welcome: string;
  login: string;
  stor: Record<string, string>;
  nlst: string[];
  view: Record<string, string>;
  retr: Record<string, string>;
  size: Record<string, number>;
  delete: Record<string, string>;
  delete_again: string;
  nlst_after: string[];
  quit: string;
  sent: string[];
}

async function prepare(t: ExecutionContext): Promise<{ srv: TestServer; work: string }> {
  await requireTool('python3', ['--version'], 'python3');
  const srv = await startTestServer();
  const work = await mkdtemp(join(tmpdir(), 'dfos-ftplib-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  return { srv, work };
}

async function python(t: ExecutionContext, args: string[]): Promise<ScriptResult> {
  const r = await run('python3', ['-c', SCRIPT, ...args], { timeoutMs: 40_000 });
  t.is(r.code, 0, `python3 ftplib script failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8')) as ScriptResult;
}

for (const mode of ['PASV', 'EPSV'] as const) {
  test(`python3 ftplib (${mode}): login, storbinary, nlst, SITE VIEW via sendcmd, retrbinary, delete, quit`, async (t) => {
    const { srv, work } = await prepare(t);
    const files: Record<string, Buffer> = {
      'notes.txt': Buffer.from('Dear ftplib,\r\n\tthis is text with ünïcode and a \\ backslash\r\n\r\nbye'),
      'data.bin': randomBytes(400_000),
      'empty.txt': Buffer.alloc(0),
    };
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(work, name), bytes);
    const names = Object.keys(files);
    const out = await python(t, [String(srv.port), 'alice', 'alice-pw', mode, 'up', work, ...names]);

    t.regex(out.welcome, /^220/);
    t.regex(out.login, /^230/);
    t.true(out.sent.includes(mode), `ftplib sent ${mode}: ${out.sent.join(' ')}`);
    t.false(out.sent.includes(mode === 'PASV' ? 'EPSV' : 'PASV'), `only ${mode} was used: ${out.sent.join(' ')}`);
    for (const name of names) {
      t.regex(out.stor[name]!, /^226/, `storbinary ${name}`);
      t.deepEqual(await readFile(join(srv.storage, 'alice', name)), files[name], `${name} stored intact`);
    }
    t.deepEqual([...out.nlst].sort(), [...names].sort());
    for (const name of names) {
      const reply = out.view[name]!;
      t.regex(reply, /^200-VIEW (text|hex) bytes=\d+ size=\d+/, `SITE VIEW ${name} reply: ${reply}`);
      t.true(reply.endsWith('\n200 VIEW end'), 'the reply ends with "200 VIEW end"');
      const preview = decodePreview(reply);
      t.deepEqual(preview.bytes, files[name]!.subarray(0, PREVIEW_LIMIT), `SITE VIEW ${name} decodes to the first bytes`);
      t.is(preview.fileSize, files[name]!.length);
      t.is(preview.mode, name.endsWith('.bin') ? 'hex' : 'text');
      t.regex(out.retr[name]!, /^226/, `retrbinary ${name}`);
      t.is(sha256(await readFile(join(work, `got-${name}`))), sha256(files[name]!), `${name} downloaded intact`);
      t.is(out.size[name], files[name]!.length);
    }
    t.regex(out.quit, /^221/);

    const down = await python(t, [String(srv.port), 'alice', 'alice-pw', mode, 'down', work, ...names]);
    for (const name of names) t.regex(down.delete[name]!, /^250/, `delete ${name}`);
    t.regex(down.delete_again, /^550/);
    t.regex(down.quit, /^221/);
    t.true(down.sent.includes(mode), `ftplib sent ${mode} for NLST: ${down.sent.join(' ')}`);
    t.deepEqual(await readdir(join(srv.storage, 'alice')), [], 'nothing left on disk');
    t.deepEqual(await tempsUnder(srv.storage), []);
    // An empty directory's NLST must send no data at all: a lone CRLF makes ftplib's
    // nlst() return [''] (a file with an empty name).
    t.deepEqual(down.nlst_after, [], 'NLST of an empty directory lists nothing');
  });
}

test('python3 ftplib: a wrong password is refused with 530 (error_perm)', async (t) => {
  const { srv, work } = await prepare(t);
  const out = await python(t, [String(srv.port), 'alice', 'not-the-password', 'BADLOGIN', 'up', work]);
  t.regex(out.login, /^530/);
});
