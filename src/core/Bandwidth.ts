import { RateShaper } from './RateShaper.js';

/** A user's rates in bytes/s (users.json `rateUp`, `rateDown`); undefined: no limit. */
export interface UserRates {
  readonly name: string;
  readonly rateUp?: number;
  readonly rateDown?: number;
}

/**
 * The shapers a session's bytes go through: `up` for uploads, `down` for downloads,
 * listings and previews. The same objects for every session of the user, so parallel
 * connections share the user's rate instead of multiplying it.
 */
export interface SessionBandwidth {
  readonly up: RateShaper;
  readonly down: RateShaper;
}

/** No rate at all (a session the server built without a registry, e.g. in a tool). */
export const UNSHAPED: SessionBandwidth = Object.freeze({ up: new RateShaper(), down: new RateShaper() });

/**
 * The server's bandwidth limits: a server-wide cap per direction (`--rate-total`, the same
 * number for uploads and for downloads, as a link's capacity is per direction) and each
 * user's own rates, kept per user name for as long as the server runs (at most one entry
 * per user who logged in). A user's bytes count against their own rate and the cap.
 */
export class Bandwidth {
  readonly #totalUp: RateShaper;
  readonly #totalDown: RateShaper;
  readonly #users = new Map<string, SessionBandwidth>();

  /** `totalRate`: bytes/s per direction for all users together (0: no cap). */
  constructor(totalRate = 0) {
    this.#totalUp = new RateShaper(undefined, totalRate);
    this.#totalDown = new RateShaper(undefined, totalRate);
  }

  /** The user's shapers (made at their first login), set to `rates` (login reads users.json afresh). */
  forUser(rates: UserRates): SessionBandwidth {
    let entry = this.#users.get(rates.name);
    if (!entry) {
      entry = { up: new RateShaper(this.#totalUp), down: new RateShaper(this.#totalDown) };
      this.#users.set(rates.name, entry);
    }
    applyRates(entry, rates);
    return entry;
  }

  /** Changes the cap for all users together (SIGHUP, `rate-total`); running shaped transfers follow at their next chunk. */
  setTotal(totalRate: number): void {
    this.#totalUp.setRate(totalRate);
    this.#totalDown.setRate(totalRate);
  }

  /**
   * Applies reloaded rates to the users seen so far (users.json changed): their running
   * shaped transfers follow at the next chunk. Users not listed keep what they had.
   */
  update(users: Iterable<UserRates>): void {
    for (const user of users) {
      const entry = this.#users.get(user.name);
      if (entry) applyRates(entry, user);
    }
  }
}

function applyRates(entry: SessionBandwidth, rates: UserRates): void {
  entry.up.setRate(rates.rateUp);
  entry.down.setRate(rates.rateDown);
}
