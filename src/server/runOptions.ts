import type { ServerConfig } from '../config/serverConfig.js';

/** What running the server (one process, or the primary of `--workers N`) needs besides the configuration. */
export interface RunOptions {
  /**
   * Reads the configuration again (SIGHUP: the config file anew, flags and environment as
   * at startup); throws with a one-line message when it is invalid.
   */
  reloadConfig?: () => Promise<ServerConfig>;
}
