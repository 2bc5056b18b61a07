import { randomUUID } from 'node:crypto';
import { redact, redactDeep } from '../project/secrets.js';

/**
 * Structured log events with stable codes (docs/logging.md). The JSON shape is versioned and
 * only ever grows: `{info: {name, code, msg, level, invocation_id, pid, thread, ts}, data}`.
 */

export const EVENTS = {
  InvocationStarted: 'A001',
  InvocationFinished: 'A002',
  SelectionEmpty: 'W001',
  NodeStarted: 'N001',
  NodeSucceeded: 'N002',
  NodeFailed: 'N003',
  NodeSkipped: 'N004',
  TestPassed: 'N005',
  TestFailed: 'N006',
  TestWarned: 'N007',
  ArtifactWritten: 'F001',
  Summary: 'S001',
  Error: 'E001',
  Info: 'I001',
} as const;

export type EventName = keyof typeof EVENTS;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export const LOG_SCHEMA_VERSION = 1;

export interface LogSink {
  write(line: string): void;
}

export class EventLogger {
  readonly invocationId = randomUUID();

  constructor(
    readonly format: LogFormat,
    private readonly out: LogSink = { write: (line) => process.stdout.write(line + '\n') },
    private readonly err: LogSink = { write: (line) => process.stderr.write(line + '\n') },
  ) {}

  emit(name: EventName, level: LogLevel, msg: string, data: Record<string, unknown> = {}, thread = 'main'): void {
    if (this.format === 'json') {
      const info = { name, code: EVENTS[name], msg: redact(msg), level, invocation_id: this.invocationId, pid: process.pid, thread, ts: new Date().toISOString() };
      this.out.write(JSON.stringify({ schema_version: LOG_SCHEMA_VERSION, info, data: redactDeep(data) }));
      return;
    }
    if (level === 'debug') return;
    const sink = level === 'error' ? this.err : this.out;
    sink.write(redact(msg));
  }

  info(msg: string, data?: Record<string, unknown>): void {
    this.emit('Info', 'info', msg, data);
  }

  warn(name: EventName, msg: string, data?: Record<string, unknown>): void {
    this.emit(name, 'warn', msg, data);
  }

  error(msg: string, data?: Record<string, unknown>): void {
    this.emit('Error', 'error', msg, data);
  }
}
