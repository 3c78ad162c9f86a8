import type { LogLine } from '../../../logging/logSink.js';
/**
 * The messages between a worker and the primary (`--workers N`) over node:cluster's IPC
 * channel. Every message carries `dfos` so that other users of the channel (the cluster
 * rate limiter, pm2) are told apart.
 */

/** The shared-state operations a worker asks the primary for (see MemoryStore). */
export type StateOp =
  | 'bans.version'
  | 'bans.all'
  | 'bans.put'
  | 'bans.lift'
  | 'load.exchange'
  | 'load.leave'
  | 'usage.read'
  | 'usage.seed'
  | 'usage.add'
  | 'usage.claim'
  | 'usage.measuring'
  | 'usage.release'
  | 'usage.drop';

/** Worker → primary: a shared-state call. */
export interface StateRequest {
  dfos: 'state';
  id: number;
  op: StateOp;
  args: unknown[];
}

/** Primary → worker: its answer. */
export interface StateReply {
  dfos: 'state-reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}


/** Worker → primary: the worker listens (its control port, for the primary's "DFOS listening" line). */
export interface WorkerReady {
  dfos: 'ready';
  host: string;
  port: number;
}

/** Primary → worker: send your metrics (for the primary's /metrics). Worker → primary: them. */
export interface MetricsRequest {
  dfos: 'metrics';
  id: number;
}
export interface MetricsReply {
  dfos: 'metrics-reply';
  id: number;
  metrics: unknown;
}

/** Primary → worker: send your status page picture (for the primary's merged page). Worker → primary: it (undefined without a board). */
export interface StatusRequest {
  dfos: 'status';
  id: number;
}
export interface StatusReply {
  dfos: 'status-reply';
  id: number;
  snapshot: unknown;
}

export type { LogLine };
export type WorkerMessage = StateRequest | LogLine | WorkerReady | MetricsReply | StatusReply;
export type PrimaryMessage = StateReply | MetricsRequest | StatusRequest;

/** Whether `msg` is one of DFOS's own messages. */
export function isDfosMessage(msg: unknown): msg is { dfos: string } {
  return typeof msg === 'object' && msg !== null && typeof (msg as { dfos?: unknown }).dfos === 'string';
}
