/**
 * Thrown by FtpEngineOptions.login when the credentials are right but the server cannot
 * serve this login (e.g. its home folder cannot be created or used). Unlike a refusal,
 * which the client sees as `530 Login incorrect`, this is answered `421` with `message`
 * and the control connection is closed: it is the server's problem, not a wrong password.
 * `message` goes to the client as it is, so it must never name a server path.
 */
export class LoginUnavailableError extends Error {
  override readonly name = 'LoginUnavailableError';
}
