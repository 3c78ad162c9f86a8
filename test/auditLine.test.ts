import test from 'ava';
import { auditLine } from '../src/logging/AuditLog.js';

/** auditLine: the audit.log line format (as winston's JSON format wrote it before). */

test('one JSON object: keys sorted, level and message as before, the timestamp in ISO form, undefined fields left out, fields added', (t) => {
  const line = auditLine(
    { session: 's1', user: 'alice', client: '127.0.0.1', action: 'upload', path: '/a.txt', bytes: 5, result: 'ok', code: 226, reason: undefined },
    { worker: 2 },
    new Date('2026-12-01T05:00:00.000Z'),
  );
  t.is(
    line,
    '{"action":"upload","bytes":5,"client":"127.0.0.1","code":226,"level":"info","message":"upload","path":"/a.txt","result":"ok","session":"s1","timestamp":"2026-12-01T05:00:00.000Z","user":"alice","worker":2}',
  );
});

test('secrets never reach the line: a PASS command or a password-like field is redacted', (t) => {
  const line = auditLine(
    { session: 's1', user: 'alice', client: '127.0.0.1', action: 'login', result: 'failed', reason: 'PASS hunter2', ...({ password: 'hunter2' } as object) },
    {},
    new Date(0),
  );
  t.false(line.includes('hunter2'));
  t.regex(line, /"password":"\*{8}"/);
});
