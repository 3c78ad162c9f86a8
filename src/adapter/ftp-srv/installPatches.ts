import { installCommandDispatch } from './commandDispatch.js';
import { abortCommand } from './abortCommand.js';
import { fileCommands } from './fileCommands.js';
import { listCommands } from './listCommands.js';
import { mlsxCommands } from './mlsxCommands.js';
import { protocolCommands } from './protocolCommands.js';
import { tlsCommands } from './tlsCommands.js';
import { randomUUID } from 'node:crypto';
import { commandRegistry, connectionIds, type CommandEntry } from './internals.js';
import { loginCommands } from './loginCommands.js';
import { dataChannelCommands } from './dataChannelCommands.js';
import { siteCommands } from './siteCommands.js';
import { transferCommands } from './transferCommands.js';

let installed = false;

function register(entries: CommandEntry[]): void {
  for (const entry of entries) {
    for (const verb of Array.isArray(entry.directive) ? entry.directive : [entry.directive]) {
      commandRegistry[verb] = entry;
    }
  }
}

/**
 * Applies every DFOS fix to ftp-srv, once per process (ftp-srv's registry is
 * process-wide): cheaper connection ids, the control-channel dispatcher, and DFOS's own
 * handlers for login, passive mode, transfers, listings, ABOR, file commands, SITE and HELP.
 */
export function installFtpSrvPatches(): void {
  if (installed) return;
  installed = true;
  // ftp-srv names every connection with uuid@3's v4(), which asks the kernel for 16 fresh
  // random bytes each time (a system call per login; ~6 µs here). Node's randomUUID() gives
  // the same kind of identifier (random version 4) from a buffered CSPRNG pool (~0.5 µs).
  connectionIds.v4 = () => randomUUID();
  installCommandDispatch();
  register(loginCommands);
  register(dataChannelCommands);
  register(transferCommands);
  register(fileCommands);
  register(listCommands);
  register([abortCommand]);
  register(mlsxCommands);
  register(protocolCommands);
  register(tlsCommands);
  register(siteCommands);
}
