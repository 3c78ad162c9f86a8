/**
 * An HAProxy configuration for N DFOS nodes behind one address (TCP mode):
 *
 * - one control frontend balancing new FTP sessions round-robin over the nodes that are
 *   ready (health check: `GET /readyz` on each node's admin listener, so a draining node
 *   stops getting sessions at once), each forwarded with a PROXY protocol v2 header;
 * - one frontend per node for that node's passive port range, forwarding every port to the
 *   same port on that node (no port on the server line), also with a PROXY v2 header.
 *
 * Each node announces the balancer's address for passive mode (`--pasv-address`) and
 * trusts the balancer (`--trusted-proxies`). deploy/haproxy.cfg is the annotated file for
 * a real deployment; this function writes the same shape for the cluster demo and tests.
 */

/** One DFOS node as the balancer sees it. */
export interface BalancedNode {
  name: string;
  /** The node's own address (its `--host`). */
  host: string;
  /** Its FTP control port. */
  port: number;
  /** Its admin listener's port (for the /readyz check). */
  adminPort: number;
  /** Its passive range (`--pasv-min`..`--pasv-max`), exposed on the balancer as is. */
  pasvMin: number;
  pasvMax: number;
}

export interface HaproxyConfigOptions {
  /** Where clients connect (the balancer's address). */
  bindHost: string;
  /** The control port on the balancer. */
  port: number;
  nodes: BalancedNode[];
  /** Send PROXY protocol v2 headers to the nodes (default true). */
  proxyProtocol?: boolean;
  /** Health check interval in ms (default 1000). */
  checkIntervalMs?: number;
  /** Where HAProxy writes its stats socket (for the demo), if anywhere. */
  statsSocket?: string;
  /** Connections at most (default 4096; HAProxy needs about twice as many file descriptors). */
  maxconn?: number;
}

export function haproxyConfig(options: HaproxyConfigOptions): string {
  const proxy = options.proxyProtocol === false ? '' : ' send-proxy-v2';
  const inter = options.checkIntervalMs ?? 1000;
  const lines = [
    'global',
    `  maxconn ${options.maxconn ?? 4096}`,
    ...(options.statsSocket ? [`  stats socket ${options.statsSocket} mode 600 level admin`] : []),
    '',
    'defaults',
    '  mode tcp',
    // A node that refuses the connection (stopped, killed) is retried on another one.
    '  retries 2',
    '  option redispatch',
    '  timeout connect 5s',
    // FTP control connections sit idle between commands (DFOS closes them after its idle timeout).
    '  timeout client 15m',
    '  timeout server 15m',
    '',
    'frontend ftp_control',
    `  bind ${options.bindHost}:${options.port}`,
    '  default_backend dfos_nodes',
    '',
    'backend dfos_nodes',
    '  balance roundrobin',
    // Ready means "accepting new sessions": /readyz turns 503 the moment a node starts draining.
    '  option httpchk',
    '  http-check send meth GET uri /readyz',
    '  http-check expect status 200',
    ...options.nodes.map((n) => `  server ${n.name} ${n.host}:${n.port}${proxy} check port ${n.adminPort} inter ${inter} fall 1 rise 1`),
  ];
  for (const n of options.nodes) {
    lines.push(
      '',
      `frontend ftp_passive_${n.name}`,
      `  bind ${options.bindHost}:${n.pasvMin}-${n.pasvMax}`,
      `  default_backend passive_${n.name}`,
      '',
      `backend passive_${n.name}`,
      // No port: each connection goes to the port it arrived on, on this node only.
      `  server ${n.name} ${n.host}${proxy}`,
    );
  }
  return lines.join('\n') + '\n';
}
