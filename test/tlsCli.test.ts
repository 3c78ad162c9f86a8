import test from 'ava';
import { fileURLToPath } from 'node:url';
import { runCli, type CliRun } from './helpers/clientFixtures.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/** Runs `node dist/cli.js serve ...args` with only the given DFOS_* variables set. */
function serve(args: string[], envExtra: Record<string, string> = {}): Promise<CliRun> {
  return runCli(CLI, ['serve', ...args], { env: envExtra });
}

test('TLS flag validation: exit 2 and one line naming the flag (or DFOS_ variable) and the accepted form', async (t) => {
  const cases: Array<[string[], Record<string, string>, string | RegExp]> = [
    [['--tls', 'yes'], {}, 'dfos: --tls must be one of off, on, required (got "yes")'],
    [[], { DFOS_TLS: 'ON' }, 'dfos: DFOS_TLS must be one of off, on, required (got "ON")'],
    [['--tls-min-version', '1.2'], {}, 'dfos: --tls-min-version must be TLSv1.2 or TLSv1.3 (got "1.2")'],
    [[], { DFOS_TLS_MIN_VERSION: 'TLSv1.1' }, 'dfos: DFOS_TLS_MIN_VERSION must be TLSv1.2 or TLSv1.3 (got "TLSv1.1")'],
    [['--tls-session-reuse', 'maybe'], {}, 'dfos: --tls-session-reuse must be required or off (got "maybe")'],
    [['--implicit-tls-port', 'abc'], {}, 'dfos: --implicit-tls-port must be a whole number from 0 to 65535 (got "abc")'],
    [['--implicit-tls-port', '70000'], {}, 'dfos: --implicit-tls-port must be a whole number from 0 to 65535 (got "70000")'],
    [['--implicit-tls-port', '990', '--tls', 'off'], {}, 'dfos: --implicit-tls-port needs --tls on or required (got "990")'],
    [['--implicit-tls-port', '2121', '--port', '2121'], {}, 'dfos: --implicit-tls-port must differ from --port (got "2121")'],
    [['--tls-cert', 'server.crt'], {}, 'dfos: --tls-cert needs --tls-key too (give both, or neither for a generated certificate) (got "server.crt")'],
    [[], { DFOS_TLS_KEY: 'server.key' }, 'dfos: DFOS_TLS_KEY needs --tls-cert too (give both, or neither for a generated certificate) (got "server.key")'],
    [['--tls-cert-names', 'ok.example.com,bad_name!'], {}, /^dfos: --tls-cert-names must be a comma-separated list of DNS names or IP addresses such as ftp\.example\.com,192\.0\.2\.7 \(got "ok\.example\.com,bad_name!"\)$/],
    [['--state-dir', ''], {}, /^dfos: --state-dir must be a directory path/],
  ];
  // Every case fails validation, so no server is ever started.
  const runs = await Promise.all(cases.map(([args, env]) => serve(args, env)));
  cases.forEach(([args, env, expected], i) => {
    const r = runs[i]!;
    const label = `serve ${args.join(' ')} ${JSON.stringify(env)}`;
    t.is(r.code, 2, `${label}: ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    t.is(lines.length, 1, `${label}: ${JSON.stringify(r.stderr)}`);
    if (typeof expected === 'string') t.is(lines[0], expected, label);
    else t.regex(lines[0] ?? '', expected, label);
  });
});

test('serve --help lists the TLS flags with their defaults and DFOS_ variables', async (t) => {
  const r = await serve(['--help']);
  t.is(r.code, 0);
  for (const re of [
    /--tls <off\|on\|required>.*\(default:\s+on\)/s,
    /--tls-cert <file>/,
    /--tls-key <file>/,
    /--tls-cert-names <a,b,\.\.\.>/,
    /--tls-min-version <TLSv1\.2\|TLSv1\.3>.*\(default:\s+TLSv1\.2\)/s,
    /--tls-session-reuse <required\|off>.*\(default:\s+required\)/s,
    /--implicit-tls-port <number>/,
    /--state-dir <dir>.*\(default:\s+\.\/state\)/s,
    /DFOS_TLS_MIN_VERSION|DFOS_<FLAG>/,
  ]) {
    t.regex(r.stdout.toString(), re);
  }
});
