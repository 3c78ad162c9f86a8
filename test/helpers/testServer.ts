import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'basic-ftp';
import { parseServerConfig, type ServerConfigInput } from '../../src/config/serverConfig.js';
import { DfosServer } from '../../src/server/DfosServer.js';
import { hashPassword } from '../../src/users/passwordHash.js';
import { limitsOf, type UserLimitKey } from '../../src/users/usersFormat.js';

/** A user for a test server. */
export interface TestUser extends Partial<Record<UserLimitKey, number>> {
  name: string;
  password: string;
  readOnly?: boolean;
  localOnly?: boolean;
  requireTls?: boolean;
}

/** A real DFOS server on an ephemeral loopback port with temporary storage and logs. */
export interface TestServer {
  server: DfosServer;
  host: string;
  port: number;
  dir: string;
  /** Where the files are: the storage folder (the configured one when the test chose it), or the s3:// URL. */
  storage: string;
  logDir: string;
  usersFile: string;
  /** The server's state directory (the generated TLS certificate is in tls/). */
  stateDir: string;
  /** Connects and logs in a basic-ftp client (closed by stop()). */
  client(user?: string, password?: string): Promise<Client>;
  /** Drains the server (if not already) and removes the temporary directory. */
  stop(): Promise<void>;
}

/** Writes a users.json with the given users (scrypt hashes). */
export async function writeUsersFile(file: string, users: TestUser[]): Promise<void> {
  const entries: Record<string, unknown> = {};
  for (const u of users) {
    entries[u.name] = {
      password: await hashPassword(u.password),
      readOnly: u.readOnly ?? false,
      localOnly: u.localOnly ?? false,
      ...(u.requireTls ? { requireTls: true } : {}),
      ...limitsOf(u),
    };
  }
  await writeFile(file, JSON.stringify({ users: entries }, null, 2));
}

/**
 * Starts a server for one test. Defaults: host 127.0.0.1, port 0, passive ports chosen
 * by the system, users alice/alice-pw and bob/bob-pw, a 50 ms auth failure delay, no
 * connection caps and no banning.
 */
export async function startTestServer(
  options: { users?: TestUser[]; config?: ServerConfigInput } = {},
): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-test-'));
  const storage = join(dir, 'storage');
  const logDir = join(dir, 'logs');
  const usersFile = join(dir, 'users.json');
  const stateDir = join(dir, 'state');
  const users = options.users ?? [
    { name: 'alice', password: 'alice-pw' },
    { name: 'bob', password: 'bob-pw' },
  ];
  await writeUsersFile(usersFile, users);
  const config = parseServerConfig({
    host: '127.0.0.1',
    port: 0,
    pasvMin: 0,
    pasvMax: 0,
    storage,
    logDir,
    users: usersFile,
    stateDir,
    authFailDelay: 0.05,
    console: false,
    // Tests open many connections from 127.0.0.1 and retry logins; the limits have their own tests.
    maxSessions: 0,
    maxSessionsPerIp: 0,
    maxLoginAttempts: 0,
    // Many tests fail logins on purpose from 127.0.0.1; the defender has its own tests.
    banThreshold: 0,
    ...options.config,
  });
  const server = await DfosServer.start(config);
  const clients: Client[] = [];
  const first = users[0];
  return {
    server,
    host: config.host,
    port: server.address.port,
    dir,
    storage: config.storage,
    logDir,
    usersFile,
    stateDir,
    async client(user = first?.name ?? 'alice', password = users.find((u) => u.name === user)?.password ?? '') {
      const client = new Client(10_000);
      clients.push(client);
      await client.access({ host: config.host, port: server.address.port, user, password });
      return client;
    },
    async stop() {
      for (const c of clients) c.close();
      await server.shutdown(1000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
