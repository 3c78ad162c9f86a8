import type { Command } from 'commander';
import { hashPassword } from '../users/passwordHash.js';
import { addUser, removeUser, setUserPassword, setUserSettings, userExists, type UserFlags } from '../users/userEdits.js';
import { shellQuote, UsersFileError } from '../users/usersFileError.js';
import { readUsersFile } from '../users/usersFileReader.js';
import { limitsOf, userNameProblem } from '../users/usersFormat.js';
import { usageError } from './errors.js';
import { usersFileOption } from './options.js';
import { readNewPassword } from './password.js';
import { addLimitOptions, describeLimits, readLimitOptions } from './userLimitOptions.js';

function checkName(name: string): void {
  const problem = userNameProblem(name);
  if (problem) throw usageError(`NAME ${problem} (got ${JSON.stringify(name)})`);
}

function flagsText(u: { readOnly: boolean; localOnly: boolean; requireTls: boolean }, limits: string[] = []): string {
  const parts = [u.readOnly ? 'read-only' : 'read-write', u.localOnly ? 'local only' : 'from anywhere'];
  if (u.requireTls) parts.push('TLS required');
  return [...parts, ...limits].join(', ');
}

/** Registers `dfos users add|set|passwd|remove|list`. */
export function registerUsers(program: Command): void {
  const users = program.command('users').description('manage the users file (add, set, passwd, remove, list)');

  const add = users
    .command('add')
    .description('add a user (the password is prompted for without echo, or read with --password-stdin)')
    .argument('<name>', 'user name: 1-64 letters, digits, "_", "." or "-", not starting with "." or "-"')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .option('--read-only', 'may download and list only')
    .option('--local-only', 'may log in only from this machine (loopback)')
    .option('--require-tls', 'may log in only over TLS (FTPS), even when the server does not require it');
  addLimitOptions(add, false)
    .addOption(usersFileOption())
    .action(async (name: string, opts: { passwordStdin?: boolean; readOnly?: boolean; localOnly?: boolean; requireTls?: boolean; users: string } & Record<string, unknown>) => {
      checkName(name);
      const limits = readLimitOptions(opts, false) as Record<string, number>;
      if (await userExists(opts.users, name)) {
        throw new UsersFileError(
          `${opts.users}: user "${name}" already exists; change the password with: dfos users passwd ${name} --users ${shellQuote(opts.users)}`,
          'exists',
          opts.users,
        );
      }
      const password = await readNewPassword(name, 'add', opts.passwordStdin === true);
      const flags = { readOnly: opts.readOnly === true, localOnly: opts.localOnly === true, requireTls: opts.requireTls === true };
      await addUser(opts.users, name, await hashPassword(password), { ...flags, ...limits });
      process.stdout.write(`added user "${name}" (${flagsText(flags, describeLimits(limits))}) to ${opts.users}\n`);
    });

  const set = users
    .command('set')
    .description('change an existing user\'s access and limits (the password stays; see passwd)')
    .argument('<name>', 'user name')
    .option('--read-only', 'may download and list only')
    .option('--read-write', 'may also upload, delete, rename and create folders')
    .option('--local-only', 'may log in only from this machine (loopback)')
    .option('--anywhere', 'may log in from any address')
    .option('--require-tls', 'may log in only over TLS (FTPS)')
    .option('--no-require-tls', 'may log in without TLS where the server allows it');
  addLimitOptions(set, true)
    .addOption(usersFileOption())
    .action(async (name: string, opts: { readOnly?: boolean; readWrite?: boolean; localOnly?: boolean; anywhere?: boolean; requireTls?: boolean; users: string } & Record<string, unknown>) => {
      checkName(name);
      if (opts.readOnly && opts.readWrite) throw usageError('--read-only and --read-write contradict each other; give one');
      if (opts.localOnly && opts.anywhere) throw usageError('--local-only and --anywhere contradict each other; give one');
      const flags: UserFlags = {
        ...(opts.readOnly ? { readOnly: true } : opts.readWrite ? { readOnly: false } : {}),
        ...(opts.localOnly ? { localOnly: true } : opts.anywhere ? { localOnly: false } : {}),
        ...(opts.requireTls !== undefined ? { requireTls: opts.requireTls } : {}),
      };
      const limits = readLimitOptions(opts, true);
      if (Object.keys(flags).length === 0 && Object.keys(limits).length === 0) {
        throw usageError('nothing to change; give at least one flag, e.g. dfos users set NAME --quota 10GiB (see dfos users set --help)');
      }
      await setUserSettings(opts.users, name, flags, limits);
      const { users: entries } = await readUsersFile(opts.users);
      const entry = entries.get(name);
      process.stdout.write(entry ? `changed "${name}" in ${opts.users}: ${flagsText(entry, describeLimits(entry))}\n` : `changed "${name}" in ${opts.users}\n`);
    });

  users
    .command('passwd')
    .description('set the password of an existing user')
    .argument('<name>', 'user name')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .addOption(usersFileOption())
    .action(async (name: string, opts: { passwordStdin?: boolean; users: string }) => {
      checkName(name);
      if (!(await userExists(opts.users, name))) {
        throw new UsersFileError(
          `${opts.users}: there is no user "${name}"; add it with: dfos users add ${name} --users ${shellQuote(opts.users)}`,
          'no-such-user',
          opts.users,
        );
      }
      const password = await readNewPassword(name, 'passwd', opts.passwordStdin === true);
      await setUserPassword(opts.users, name, await hashPassword(password));
      process.stdout.write(`changed the password of "${name}" in ${opts.users}\n`);
    });

  users
    .command('remove')
    .description('remove a user (their files in storage are kept)')
    .argument('<name>', 'user name')
    .addOption(usersFileOption())
    .action(async (name: string, opts: { users: string }) => {
      await removeUser(opts.users, name);
      process.stdout.write(`removed user "${name}" from ${opts.users} (their files in storage are kept)\n`);
    });

  users
    .command('list')
    .description('list users and their flags (never password hashes)')
    .option('--json', 'print JSON: [{"name", "readOnly", "localOnly", "requireTls", and the limits set}, ...]')
    .addOption(usersFileOption())
    .action(async (opts: { json?: boolean; users: string }) => {
      const { users: entries } = await readUsersFile(opts.users);
      const list = [...entries.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, e]) => ({ name, readOnly: e.readOnly, localOnly: e.localOnly, requireTls: e.requireTls, ...limitsOf(e) }));
      if (opts.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      if (list.length === 0) {
        process.stderr.write(`no users in ${opts.users}\n`);
        return;
      }
      const rows = [
        ['NAME', 'ACCESS', 'LOGIN FROM', 'LIMITS'],
        ...list.map((u) => [u.name, u.readOnly ? 'read-only' : 'read-write', `${u.localOnly ? 'local only' : 'anywhere'}${u.requireTls ? ', over TLS only' : ''}`, describeLimits(u).join(', ') || '-']),
      ];
      const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) {
        process.stdout.write(`${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]!.padEnd(widths[2]!)}  ${r[3]}\n`);
      }
    });
}
