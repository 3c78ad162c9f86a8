/**
 * Errors the CLI turns into one line on stderr and an exit code: 2 for a bad invocation
 * (flag, argument or value), 1 for an operation that failed, 130 for a cancelled prompt.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message.replace(/\s*\n\s*/g, ' '));
  }
}

/** A bad flag, argument or value: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(message, 2);
}

/** An operation that could not be done: exit code 1. */
export function operationError(message: string): CliError {
  return new CliError(message, 1);
}
