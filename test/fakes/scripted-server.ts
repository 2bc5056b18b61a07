import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A scripted failure for the next request: 429 with Retry-After, another status, or a pass (status 0). */
export type Failure = { status: 429; retryAfter: string } | { status: number; body?: string };

export interface FakeResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A request a fake received, as the JSON fakes record it; `status` is what it answered. */
export interface RecordedRequest {
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (undefined when empty or not JSON). */
  body: any;
  status: number;
}

/**
 * Answers a recorded request: `payload` as JSON (a string as it is: CSV, a scripted body; nothing
 * when undefined), with the fake's content type unless `extra` overrides it.
 */
export type Reply = (status: number, payload?: unknown, extra?: Record<string, string>) => FakeResponse;

/** A request body as JSON: undefined when empty or not JSON. */
export function jsonBody(text: string): any {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
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

  /** Drops the scripted failures and clears the fake's other scripted answers (per-record rejections, …): a `reset()`. */
  protected clearScript(...scripted: { clear(): void }[]): this {
    this.failures = [];
    for (const s of scripted) s.clear();
    return this;
  }

  /** The next scripted failure, unless it is a pass (or there is none). */
  protected scriptedFailure(): Failure | undefined {
    const failure = this.nextFailure();
    return failure && failure.status !== 0 ? failure : undefined;
  }

  /**
   * Records a request in `log` (stamped with the time, status 0 until answered) and gives the
   * `reply` that answers it: every reply stamps its status on the record. `common` headers go on
   * every answer.
   */
  protected receive<R extends { at: number; status: number }>(log: R[], fields: Omit<R, 'at' | 'status'>, contentType: string, common: Record<string, string> = {}): { request: R; reply: Reply } {
    const request = { at: performance.now(), ...fields, status: 0 } as R;
    log.push(request);
    const reply: Reply = (status, payload, extra = {}) => {
      request.status = status;
      const body = payload === undefined ? '' : typeof payload === 'string' ? payload : JSON.stringify(payload);
      return { status, headers: { 'content-type': contentType, ...common, ...extra }, body };
    };
    return { request, reply };
  }
}
