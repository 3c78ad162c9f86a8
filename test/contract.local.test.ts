import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempsUnder } from './helpers/interop.js';
import { storageContract } from './helpers/storageContract.js';

/** The storage contract (test/helpers/storageContract.ts) on local disk. */
storageContract(test, 'local disk', {
  config: async () => ({}),
  capabilities: { atomicReplace: true, resume: true, append: true, chmod: true, renameDirectory: true, setModificationTime: true },
  stored: (srv, user, path) =>
    readFile(join(srv.storage, user, path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    }),
  leftovers: (srv) => tempsUnder(srv.storage),
});
