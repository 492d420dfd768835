// The reconnect schedule of PROTOCOL.md §13, the same rule as the Go SDKs'
// internal/backoff: full-jitter exponential backoff over a counter of
// consecutive failed attempts, where an attempt fails if it does not reach
// AUTH_OK or if its session ends, whatever the code, less than stableAfterMs
// after AUTH_OK; a GOAWAY's retry-after replaces the backoff, or is raised to
// it when the session it ended counts as failed. It only computes waits: it
// neither sleeps nor reads the clock, so tests drive it with made-up values.

/** Ending says how a connection attempt ended, for Schedule.next. */
export interface Ending {
  /** authenticated is set when the attempt reached AUTH_OK. */
  authenticated: boolean;
  /** livedMs is how long the session stayed authenticated; ignored unless authenticated. */
  livedMs?: number;
  /** goAway is set when a GOAWAY ended the attempt; retryAfterMs is what remains of its wait. */
  goAway?: boolean;
  retryAfterMs?: number;
}

const maxFailures = 64;

/** Schedule is one client's reconnect schedule. Not shared between clients. */
export class Schedule {
  private n = 0;

  /**
   * @param minMs base of the backoff: the wait before attempt n is uniform in [0, min(maxMs, minMs·2ⁿ)]
   * @param maxMs cap of the backoff
   * @param stableAfterMs how long a session must last to reset the counter
   * @param random jitter source, uniform in [0, 1) (Math.random by default)
   */
  constructor(
    readonly minMs: number,
    readonly maxMs: number,
    readonly stableAfterMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** failures returns the number of consecutive failed attempts counted so far. */
  get failures(): number {
    return this.n;
  }

  /** ceiling returns min(maxMs, minMs·2ⁿ), the largest wait after n failed attempts. */
  ceiling(n: number): number {
    return Math.max(0, Math.min(this.maxMs, this.minMs * 2 ** Math.min(n, maxFailures)));
  }

  /** delay returns a random wait in [0, ceiling(n)] milliseconds, whole. */
  delay(n: number): number {
    const ceil = Math.floor(this.ceiling(n));
    if (ceil <= 0) return 0;
    return Math.min(ceil, Math.floor(this.random() * (ceil + 1)));
  }

  /** next records how the last attempt ended and returns the wait before the next one, in ms. */
  next(e: Ending): number {
    const stable = e.authenticated && (e.livedMs ?? 0) >= this.stableAfterMs;
    if (stable) this.n = 0;
    else if (this.n < maxFailures) this.n++;
    const retry = Math.max(0, e.retryAfterMs ?? 0);
    if (e.goAway && stable) return retry;
    if (e.goAway) return Math.max(retry, this.delay(this.n));
    return this.delay(this.n);
  }
}
