/**
 * Runs async tasks one at a time, in call order. basic-ftp allows one command at a time
 * per connection and closes the client ("User launched a task while another one is still
 * running") otherwise; DfosClient puts every call through one queue, so concurrent calls
 * simply wait their turn. A failed task does not stop the ones after it.
 */
export class CommandQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** How many tasks are running or waiting. */
  get size(): number {
    return this.waiting;
  }

  /** Runs `task` after every task queued before it has settled; resolves or rejects as it does. */
  run<T>(task: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(task).finally(() => {
      this.waiting--;
    });
    this.tail = result.catch(() => undefined);
    return result;
  }
}
