/** What was wrong with a certificate or key file (for tests and callers that branch on it). */
export type TlsCredentialsProblem =
  | 'missing'
  | 'unreadable'
  | 'not-pem'
  | 'encrypted'
  | 'invalid'
  | 'mismatch'
  | 'write-failed';

/**
 * A certificate or key that cannot be used, with a one-line operator-facing message that
 * names the file and the problem, e.g. `TLS key /etc/dfos/key.pem: does not match the
 * certificate /etc/dfos/cert.pem`.
 */
export class TlsCredentialsError extends Error {
  override readonly name = 'TlsCredentialsError';
  constructor(
    message: string,
    readonly problem: TlsCredentialsProblem,
    /** The file the message is about. */
    readonly file: string,
  ) {
    super(message);
  }
}
