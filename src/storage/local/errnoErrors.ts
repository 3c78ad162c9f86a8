import { StorageError } from '../StorageBackend.js';

/** Maps a Node.js filesystem error to a client-safe StorageError about `clientPath`. */
export function fromErrno(err: unknown, clientPath: string): StorageError {
  if (err instanceof StorageError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new StorageError('not-found', `${clientPath}: No such file or directory`, { cause: err });
    case 'EEXIST':
      return new StorageError('exists', `${clientPath}: Already exists`, { cause: err });
    case 'ENOTEMPTY':
      return new StorageError('not-empty', `${clientPath}: Directory not empty`, { cause: err });
    case 'ENOTDIR':
      return new StorageError('not-a-directory', `${clientPath}: Not a directory`, { cause: err });
    case 'EISDIR':
      return new StorageError('is-a-directory', `${clientPath}: Is a directory`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new StorageError('denied', `${clientPath}: Permission denied`, { cause: err });
    case 'ENOSPC':
    case 'EDQUOT':
      return new StorageError('no-space', `${clientPath}: Insufficient storage space`, { cause: err });
    case 'ENAMETOOLONG':
      return new StorageError('invalid-name', `${clientPath}: File name too long`, { cause: err });
    case 'ELOOP':
      return new StorageError('denied', `${clientPath}: Too many levels of symbolic links`, { cause: err });
    default:
      return new StorageError('io', `${clientPath}: Local error in processing`, { cause: err });
  }
}

/** The refusal for anything that leads outside the jail (same text whatever is outside). */
export function denied(clientPath: string): StorageError {
  return new StorageError('denied', `${clientPath}: Permission denied`);
}
