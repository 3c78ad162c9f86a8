import type { ServerConfig } from '../config/serverConfig.js';

/**
 * Runs the DFOS server in the foreground until SIGTERM/SIGINT, then drains and exits.
 * (Being written by the server-core work; the CLI calls this.)
 */
export async function runServer(config: ServerConfig): Promise<void> {
  throw new Error(`runServer not yet implemented for ${config.host}`);
}
