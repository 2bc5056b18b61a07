import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ScriptedServer, jsonBody, type FakeResponse, type RecordedRequest } from './scripted-server.js';

/**
 * A local stand-in for HubSpot CRM v3 contacts (../shared/reference/reverse-etl.md), on loopback
 * only. It checks the Bearer token, enforces the 100-input batch cap (400 VALIDATION_ERROR),
 * implements batch/upsert (by idProperty; each result echoes `objectWriteTraceId`, says `new`
 * when the call created the contact, and carries the contact's own `createdAt`), batch/read (by idProperty; 207 OBJECT_NOT_FOUND for missing
 * ids), batch/archive (HubSpot ids, 204) and gdpr-delete (one contact by HubSpot id, or by
 * idProperty; 204; an unknown id is a 404, an unknown email is blocklisted as HubSpot documents),
 * records every request, and can be scripted: 429 with HubSpot's RATE_LIMIT body and
 * Retry-After, 5xx, 401, and 207 per-record errors for given emails.
 */

export interface Contact {
  id: string;
  properties: Record<string, string>;
  /** When HubSpot created it (ISO 8601, milliseconds): what `createdAt` says in every result. */
  createdAt: string;
}

export class FakeHubSpot extends ScriptedServer {
  readonly requests: RecordedRequest[] = [];
  /** Live contacts by lower-cased email (or id_property value). */
  readonly contacts = new Map<string, Contact>();
  readonly archived: Contact[] = [];
  /** Contacts permanently deleted by gdpr-delete. */
  readonly gdprDeleted: Contact[] = [];
  /** Emails gdpr-delete was given but did not find: HubSpot blocklists them. */
  readonly blocklist = new Set<string>();
  private nextId = 1001;
  private readonly rejected = new Map<string, string>();

  constructor(readonly token: string) {
    super();
  }

  /** A contact someone else created (the CRM's owner, a form; by default a day ago), keyed like upserts are. */
  addContact(email: string, properties: Record<string, string> = {}, createdAt = new Date(Date.now() - 86_400_000)): Contact {
    const key = email.toLowerCase();
    const contact = { id: String(this.nextId++), properties: { ...properties, email: key }, createdAt: createdAt.toISOString() };
    this.contacts.set(key, contact);
    return contact;
  }

  /** Upserts of these emails fail one by one, in a 207. */
  rejectEmails(emails: string[], message = 'Property values were not valid'): this {
    for (const e of emails) this.rejected.set(e.toLowerCase(), message);
    return this;
  }

  reset(): this {
    return this.clearScript(this.rejected);
  }

  emails(): string[] {
    return [...this.contacts.keys()].sort();
  }

  protected handle(method: string, path: string, headers: IncomingHttpHeaders, text: string): FakeResponse {
    const body = jsonBody(text);
    const { reply } = this.receive(this.requests, { method, path, headers, body }, 'application/json;charset=utf-8');
    const error = (status: number, category: string, message: string) => reply(status, { status: 'error', message, correlationId: randomUUID(), category });
    if (headers['authorization'] !== `Bearer ${this.token}`) {
      return error(401, 'INVALID_AUTHENTICATION', 'Authentication credentials not found. This API supports OAuth 2.0 authentication.');
    }
    const failure = this.scriptedFailure();
    if (failure) {
      if ('retryAfter' in failure) {
        return reply(429, {
          status: 'error',
          message: 'You have reached your ten_secondly_rolling limit.',
          errorType: 'RATE_LIMIT',
          correlationId: randomUUID(),
          policyName: 'TEN_SECONDLY_ROLLING',
          requestId: randomUUID(),
        }, { 'retry-after': failure.retryAfter, 'x-hubspot-ratelimit-max': '100', 'x-hubspot-ratelimit-remaining': '0', 'x-hubspot-ratelimit-interval-milliseconds': '10000' });
      }
      if (failure.body !== undefined) return reply(failure.status, failure.body, { 'content-type': 'application/json' });
      return error(failure.status, failure.status === 401 ? 'EXPIRED_AUTHENTICATION' : 'INTERNAL_ERROR', `scripted ${failure.status}`);
    }
    if (method !== 'POST') return error(405, 'VALIDATION_ERROR', 'method not allowed');
    if (path === '/crm/v3/objects/contacts/gdpr-delete') return this.gdprDelete(body, reply, error);
    const inputs: any[] | undefined = body?.inputs;
    if (!Array.isArray(inputs)) return error(400, 'VALIDATION_ERROR', 'Invalid input JSON: inputs is required');
    if (inputs.length > 100) return error(400, 'VALIDATION_ERROR', `Batch input size ${inputs.length} exceeds the limit of 100`);
    const now = new Date().toISOString();
    const complete = (results: unknown[], errors: unknown[]) =>
      errors.length === 0
        ? reply(200, { status: 'COMPLETE', results, startedAt: now, completedAt: now })
        : reply(207, { status: 'COMPLETE', results, numErrors: errors.length, errors, startedAt: now, completedAt: now });

    switch (path) {
      case '/crm/v3/objects/contacts/batch/upsert': {
        const ids = inputs.map((i) => String(i.id).toLowerCase());
        if (new Set(ids).size !== ids.length) return error(400, 'VALIDATION_ERROR', 'Duplicate IDs found in batch input');
        const results: unknown[] = [];
        const errors: unknown[] = [];
        for (const input of inputs) {
          if (typeof input.idProperty !== 'string' || typeof input.id !== 'string') return error(400, 'VALIDATION_ERROR', 'idProperty and id are required');
          const key = input.id.toLowerCase();
          const message = this.rejected.get(key);
          if (message) {
            errors.push({ status: 'error', category: 'VALIDATION_ERROR', message, context: { ids: [input.id] }, errors: [{ message: `${input.id} is not valid`, code: 'INVALID_EMAIL', in: 'email' }] });
            continue;
          }
          const existing = this.contacts.get(key);
          const contact = existing ?? { id: String(this.nextId++), properties: {}, createdAt: now };
          Object.assign(contact.properties, input.properties, { [input.idProperty]: key });
          this.contacts.set(key, contact);
          const trace = typeof input.objectWriteTraceId === 'string' ? { objectWriteTraceId: input.objectWriteTraceId } : {};
          results.push({ id: contact.id, properties: contact.properties, createdAt: contact.createdAt, updatedAt: now, archived: false, new: !existing, ...trace });
        }
        return complete(results, errors);
      }
      case '/crm/v3/objects/contacts/batch/read': {
        const results: unknown[] = [];
        const missing: string[] = [];
        for (const input of inputs) {
          const contact = this.contacts.get(String(input.id).toLowerCase());
          if (contact) results.push({ id: contact.id, properties: contact.properties, createdAt: contact.createdAt, updatedAt: now, archived: false });
          else missing.push(String(input.id));
        }
        const errors = missing.length ? [{ status: 'error', category: 'OBJECT_NOT_FOUND', message: 'Could not get some CONTACT objects, they may be deleted or not exist.', context: { ids: missing } }] : [];
        return complete(results, errors);
      }
      case '/crm/v3/objects/contacts/batch/archive': {
        for (const input of inputs) {
          for (const [key, contact] of this.contacts) {
            if (contact.id === String(input.id)) {
              this.contacts.delete(key);
              this.archived.push(contact);
            }
          }
        }
        return reply(204);
      }
      default:
        return error(404, 'OBJECT_NOT_FOUND', `no route ${path}`);
    }
  }

  /** `{objectId, idProperty?}`: one contact, permanently. Without idProperty, objectId is the HubSpot id. */
  private gdprDelete(
    body: any,
    reply: (status: number, payload?: unknown) => FakeResponse,
    error: (status: number, category: string, message: string) => FakeResponse,
  ): FakeResponse {
    if (typeof body?.objectId !== 'string' || body.objectId === '') return error(400, 'VALIDATION_ERROR', 'Invalid input JSON: objectId is required');
    const byProperty = typeof body.idProperty === 'string';
    const key = byProperty ? body.objectId.toLowerCase() : [...this.contacts].find(([, c]) => c.id === body.objectId)?.[0];
    const contact = key === undefined ? undefined : this.contacts.get(key);
    if (key === undefined || contact === undefined) {
      if (byProperty && body.idProperty === 'email') {
        this.blocklist.add(body.objectId.toLowerCase());
        return reply(204);
      }
      return error(404, 'OBJECT_NOT_FOUND', 'resource not found');
    }
    this.contacts.delete(key);
    this.gdprDeleted.push(contact);
    return reply(204);
  }
}
