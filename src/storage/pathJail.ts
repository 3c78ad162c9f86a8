import { mkdir, realpath } from 'node:fs/promises';
import { posix, sep } from 'node:path';
import { FsError } from './FsError.js';
import { isReservedName } from './hiddenTemp.js';
import { JailResolver } from './JailResolver.js';

/** C0 control characters and DEL: never part of a name a client may create or address. */
const CONTROL_CHARACTER = /[\x00-\x1f\x7f]/;

/**
 * Confines client paths to one directory. Lexical rules first (`..` clamps at `/`,
 * backslashes are separators, NUL and other control characters are refused, reserved
 * temporary names are refused), then every access goes through a JailResolver, which
 * walks the path by directory descriptors with O_NOFOLLOW and follows only links whose
 * target stays inside, so nothing outside is reached even while a local process swaps
 * directories for links.
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
   * refuses every symbolic link inside the jail too.
   */
  static async open(root: string, { followLinks = true }: { followLinks?: boolean } = {}): Promise<PathJail> {
    await mkdir(root, { recursive: true, mode: 0o750 });
    return new PathJail(await realpath(root), followLinks);
  }

  /** True when `real` is the root or lies below it (separator-boundary check). */
  contains(real: string): boolean {
    return real === this.root || real.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
  }

  /**
   * Turns client input into a normalised absolute client path, relative to `cwd`.
   * Throws 501 for a missing argument and 553 for control characters or a reserved name.
   */
  clientPath(cwd: string, input: string | null | undefined): string {
    if (input === undefined || input === null || input === '') throw new FsError(501, 'A path argument is required');
    if (input.includes('\0')) throw new FsError(553, 'File name not allowed: contains a NUL byte');
    if (CONTROL_CHARACTER.test(input)) throw new FsError(553, 'File name not allowed: contains a control character');
    const path = posix.resolve('/', cwd, input.replace(/\\/g, '/'));
    if (path.split('/').some(isReservedName)) throw new FsError(553, 'File name not allowed: reserved name');
    return path;
  }
}
