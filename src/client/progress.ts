/** A progress report: `bytes` done so far, counted from the start of the file (so a resumed transfer starts at the resume point). */
export interface ProgressEvent {
  bytes: number;
  /** The final size, when known: a local file or Buffer being uploaded, a remote file with SIZE. */
  totalBytes?: number;
}

/** Called after each chunk of a transfer, and once when the server confirmed it, with the full count (the only report with bytes === totalBytes). */
export type ProgressHandler = (event: ProgressEvent) => void;

/** Counts the bytes of one transfer and reports them to an optional handler. */
export class ProgressReporter {
  private done: number;

  constructor(
    private readonly handler: ProgressHandler | undefined,
    /** Where the transfer starts in the file (the resume offset). */
    readonly startAt: number,
    private totalBytes: number | undefined,
  ) {
    this.done = startAt;
  }

  /** Bytes done, from the start of the file. */
  get bytes(): number {
    return this.done;
  }

  /** Bytes moved by this transfer (without the resume offset). */
  get transferred(): number {
    return this.done - this.startAt;
  }

  /**
   * Adds a chunk and reports it, except when it reaches the known total: the full count is
   * reported once, by finish(), after the server confirmed the transfer. A handler that
   * throws aborts the transfer (our streams turn that into a LocalError).
   */
  add(n: number): void {
    this.done += n;
    if (this.totalBytes !== undefined && this.done >= this.totalBytes) return;
    this.emit();
  }

  /** The final report: the full count, as both bytes and totalBytes (a file that changed size meanwhile has its real size). */
  finish(): void {
    this.totalBytes = this.done;
    this.emit();
  }

  private emit(): void {
    if (!this.handler) return;
    this.handler(this.totalBytes === undefined ? { bytes: this.done } : { bytes: this.done, totalBytes: this.totalBytes });
  }
}
