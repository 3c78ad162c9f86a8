import type { SecureContext } from 'node:tls';

/**
 * What a protocol engine needs to offer TLS (FTPS, RFC 4217): the policy and the current
 * credentials. Built by the server from `--tls*` flags; `undefined` where TLS is off.
 */
export interface TlsSettings {
  /** `on`: offered (AUTH TLS, implicit port); `required`: no login and no data without it. */
  readonly mode: 'on' | 'required';
  /** The current certificate and key (replaced in place when they are reloaded). */
  secureContext(): SecureContext;
  /**
   * A fresh context with the current certificate and key and its own session-ticket keys,
   * for one control connection and its data connections: only sessions that connection's
   * client was given can be resumed on its data connections (RFC 4217 §10.2 session reuse).
   */
  sessionContext(): SecureContext;
  /** Lowest protocol version accepted. */
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /**
   * `required`: a protected data connection must resume the control connection's TLS
   * session (so a third party racing to the passive port cannot take the transfer);
   * `off`: any TLS session is accepted (for clients that cannot resume, e.g. plain
   * Python ftplib).
   */
  readonly sessionReuse: 'required' | 'off';
  /** A second port speaking TLS from the first byte (implicit FTPS), or undefined. */
  readonly implicitPort: number | undefined;
}
