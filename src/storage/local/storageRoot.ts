import { mkdir, realpath, stat } from 'node:fs/promises';

/**
 * Creates the storage root (`--storage`) if needed and returns its real path. Every
 * problem becomes one operator-facing line naming the path and the fix, instead of Node's
 * raw "EEXIST: file already exists, mkdir …".
 */
export async function prepareStorageRoot(path: string): Promise<string> {
  try {
    await mkdir(path, { recursive: true, mode: 0o750 });
    const real = await realpath(path);
    if (!(await stat(real)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'EEXIST' });
    return real;
  } catch (err) {
    throw new Error(`--storage ${path}: ${storageProblem(path, err)}`);
  }
}

/** What is wrong with the storage path and what to do, from the error of mkdir/realpath. */
function storageProblem(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EEXIST':
      return 'is a file, not a directory; point --storage at a directory';
    case 'ENOTDIR':
      return 'a part of that path is a file, not a directory; point --storage at a directory';
    case 'EACCES':
    case 'EPERM':
      return `permission denied; create it (mkdir -p ${path}) and let the user DFOS runs as write to it, or point --storage at a directory it can write`;
    case 'EROFS':
      return 'the file system is read-only; point --storage at a writable directory';
    case 'ENOSPC':
      return 'no space left on the device; free some space or point --storage at another directory';
    default:
      return `cannot create or open it (${code ?? (err as Error).message}); point --storage at a writable directory`;
  }
}
