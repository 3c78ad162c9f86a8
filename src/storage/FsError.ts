/**
 * A filesystem refusal that is safe to show to the FTP client: its message names only
 * the client-side path, never a server path, and `code` is the FTP reply code to use.
 */
export class FsError extends Error {
  constructor(
    /** FTP reply code: 550 not found / not allowed, 553 name not allowed, 450 busy, 451 local error. */
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'FsError';
  }
}

/** Maps a Node.js filesystem error to a client-safe FsError about `clientPath`. */
export function toFsError(err: unknown, clientPath: string): FsError {
  if (err instanceof FsError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new FsError(550, `${clientPath}: No such file or directory`);
    case 'EEXIST':
      return new FsError(550, `${clientPath}: Already exists`);
    case 'ENOTEMPTY':
      return new FsError(550, `${clientPath}: Directory not empty`);
    case 'ENOTDIR':
      return new FsError(550, `${clientPath}: Not a directory`);
    case 'EISDIR':
      return new FsError(550, `${clientPath}: Is a directory`);
    case 'EACCES':
    case 'EPERM':
      return new FsError(550, `${clientPath}: Permission denied`);
    case 'ENOSPC':
    case 'EDQUOT':
      return new FsError(452, `${clientPath}: Insufficient storage space`);
    case 'ENAMETOOLONG':
      return new FsError(553, `${clientPath}: File name too long`);
    case 'ELOOP':
      return new FsError(550, `${clientPath}: Too many levels of symbolic links`);
    default:
      return new FsError(451, `${clientPath}: Local error in processing`);
  }
}
