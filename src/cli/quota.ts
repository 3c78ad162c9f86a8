import type { Command } from 'commander';
import { quotaLines } from '../core/quotaReport.js';
import { readUsageFile, usageFilePath } from '../core/UsageLedger.js';
import { shellQuote, UsersFileError } from '../users/usersFileError.js';
import { readUsersFile } from '../users/usersFileReader.js';
import { limitsOf } from '../users/usersFormat.js';
import { stateDirOption, usersFileOption } from './options.js';

/**
 * Registers `dfos quota NAME`: the user's limits (users.json) and the usage the server
 * keeps (`<state-dir>/usage.json`, current within a second of each change). A user with a
 * quota who has not logged in since it was set has not been measured yet.
 */
export function registerQuota(program: Command): void {
  program
    .command('quota')
    .description("show a user's quota and file-size limit, and what they use (as the server last recorded it)")
    .argument('<name>', 'user name')
    .option('--json', 'print JSON: {"user", "limits": {...}, "usage": {"bytes", "files", "measuredAt", "updatedAt"} or null}')
    .addOption(usersFileOption())
    .addOption(stateDirOption('quota usage in usage.json'))
    .action(async (name: string, opts: { json?: boolean; users: string; stateDir: string }) => {
      const { users } = await readUsersFile(opts.users);
      const entry = users.get(name);
      if (!entry) {
        throw new UsersFileError(`${opts.users}: there is no user "${name}"; see the users with: dfos users list --users ${shellQuote(opts.users)}`, 'no-such-user', opts.users);
      }
      const { quotaBytes, quotaFiles, maxFileSize } = limitsOf(entry);
      const limits = { ...(quotaBytes ? { quotaBytes } : {}), ...(quotaFiles ? { quotaFiles } : {}), ...(maxFileSize ? { maxFileSize } : {}) };
      const tracked = quotaBytes !== undefined || quotaFiles !== undefined;
      const file = usageFilePath(opts.stateDir);
      const record = tracked ? (await readUsageFile(file)).get(name) : undefined;
      if (opts.json) {
        const usage = record ? { bytes: record.bytes, files: record.files, measuredAt: new Date(record.measuredAt).toISOString(), updatedAt: new Date(record.updatedAt).toISOString() } : null;
        process.stdout.write(JSON.stringify({ user: name, limits, usage }, null, 2) + '\n');
        return;
      }
      const lines = quotaLines({ limits, ...(record ? { usage: { ...record, measuredAt: new Date(record.measuredAt) } } : {}) });
      if (!tracked && lines.length === 0) {
        process.stdout.write(`${name}: no quota or file-size limit (set one with: dfos users set ${name} --quota 10GiB)\n`);
        return;
      }
      process.stdout.write(`${name}:\n`);
      for (const line of lines) process.stdout.write(`  ${line}\n`);
      if (tracked && !record) process.stdout.write(`  Usage: not measured yet (the server measures it at ${name}'s next login; nothing in ${file})\n`);
      if (record) process.stdout.write(`  Measured ${new Date(record.measuredAt).toISOString()}, last changed ${new Date(record.updatedAt).toISOString()}\n`);
    });
}
