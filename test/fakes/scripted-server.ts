import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A scripted failure for the next request: 429 with Retry-After, another status, or a pass (status 0). */
export type Failure = { status: 429; retryAfter: string } | { status: number; body?: string };

export interface FakeResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * What the fake destination servers share: a loopback HTTP server, optional latency with an
 * in-flight count (to observe concurrency), and a queue of scripted failures. Subclasses answer
 * requests in `handle` and take the next scripted failure with `nextFailure()`.
 */
export abstract class ScriptedServer {
  /** Requests in progress now, and the most at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Milliseconds each request takes. */
  latencyMs = 0;
  url = '';
  protected failures: Failure[] = [];
  private server: Server | undefined;

  /** The path appended to the server's base URL in `url`. */
  protected readonly urlPath: string = '';

  protected abstract handle(method: string, path: string, headers: IncomingHttpHeaders, text: string): FakeResponse;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        setTimeout(() => {
          const { status, headers, body } = this.handle(req.method ?? '', req.url ?? '', req.headers, Buffer.concat(chunks).toString('utf8'));
          this.inFlight--;
          res.writeHead(status, headers);
          res.end(body);
        }, this.latencyMs);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${this.urlPath}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The next `n` requests fail with 429 and `Retry-After: <retryAfter>` (seconds or an HTTP date). */
  rateLimitNext(n: number, retryAfter: string): this {
    for (let i = 0; i < n; i++) this.failures.push({ status: 429, retryAfter });
    return this;
  }

  /** The next `n` requests are served normally (to place a failure later in the script). */
  passNext(n: number): this {
    for (let i = 0; i < n; i++) this.failures.push({ status: 0 });
    return this;
  }

  /** The next `n` requests fail with `status` (500, 503, 401, 403, …). */
  failNext(n: number, status: number, body?: string): this {
    for (let i = 0; i < n; i++) this.failures.push({ status, body });
    return this;
  }

  protected nextFailure(): Failure | undefined {
    return this.failures.shift();
  }
}
