import { lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { sep } from 'node:path';
import { JailResolver } from './JailResolver.js';

/**
 * One user's folder on local disk. The core has already normalised every path lexically
 * (see core/clientPath.ts); every access goes through the JailResolver, which walks the
 * path by directory descriptors with O_NOFOLLOW and follows only links whose target stays
 * inside, so nothing outside is reached even while a local process swaps directories for
 * links.
 */
export class PathJail {
  /** Race-free resolution of client paths beneath the root. */
  readonly resolver: JailResolver;

  private constructor(
    /** Real (symlink-free) absolute path of the jail's root directory. */
    readonly root: string,
    followLinks: boolean,
  ) {
    this.resolver = new JailResolver(root, followLinks);
  }

  /**
   * Creates the root directory if needed and returns a jail for it. `followLinks: false`
   * refuses every symbolic link inside the jail too. `parentIsReal`: the root's parent is a
   * real path (no links in it), so a root that is a directory, not a link, is its own real
   * path: one lstat, instead of mkdir, a stat and an lstat per component of the path (eight
   * system calls for ./server_storage/<user> under /home/dfos). Runs at every login,
   * synchronously (microseconds on a local disk, where thread-pool round trips cost
   * ~250 µs of the login).
   */
  static async open(root: string, { followLinks = true, parentIsReal = false }: { followLinks?: boolean; parentIsReal?: boolean } = {}): Promise<PathJail> {
    if (parentIsReal && lstatSync(root, { throwIfNoEntry: false })?.isDirectory()) return new PathJail(root, followLinks);
    mkdirSync(root, { recursive: true, mode: 0o750 });
    return new PathJail(realpathSync(root), followLinks);
  }

  /** True when `real` is the root or lies below it (separator-boundary check). */
  contains(real: string): boolean {
    return real === this.root || real.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
  }
}
