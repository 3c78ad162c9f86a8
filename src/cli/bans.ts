import type { Command } from 'commander';
import { isIP } from 'node:net';
import { bansFilePath, readBansFile, writeBansFile } from '../core/bansFile.js';
import { normaliseAddress } from '../util/address.js';
import { operationError, usageError } from './errors.js';
import { stateDirOption } from './options.js';

/** Registers `dfos bans list|lift`. */
export function registerBans(program: Command): void {
  const bans = program.command('bans').description('list or lift the addresses banned after failed logins');

  bans
    .command('list')
    .description('list active bans: address, until (UTC), how many times banned')
    .addOption(stateDirOption('bans in bans.json'))
    .action(async (opts: { stateDir: string }) => {
      const file = bansFilePath(opts.stateDir);
      const now = Date.now();
      const active = (await readBansFile(file)).filter((b) => b.until > now);
      if (active.length === 0) {
        process.stderr.write(`no active bans in ${file}\n`);
        return;
      }
      for (const b of active) process.stdout.write(`${b.ip}  until ${new Date(b.until).toISOString()}  count ${b.count}\n`);
    });

  bans
    .command('lift')
    .description('lift the ban of an address (a running server notices within seconds)')
    .argument('<ip>', 'the banned address')
    .addOption(stateDirOption('bans in bans.json'))
    .action(async (ip: string, opts: { stateDir: string }) => {
      const address = normaliseAddress(ip.trim());
      if (!address || isIP(address) === 0) throw usageError(`IP must be an IPv4 or IPv6 address (got ${JSON.stringify(ip)})`);
      const file = bansFilePath(opts.stateDir);
      const all = await readBansFile(file);
      const rest = all.filter((b) => normaliseAddress(b.ip) !== address);
      if (rest.length === all.length) throw operationError(`${address} is not banned (${file})`);
      await writeBansFile(file, rest);
      process.stdout.write(`lifted the ban of ${address} in ${file}\n`);
    });
}
