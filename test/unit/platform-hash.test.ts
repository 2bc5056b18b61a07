import { describe, expect, it } from 'vitest';
import type { OutboundRecord } from '../../src/destinations/destination.js';
import {
  GOOGLE_RULES,
  META_RULES,
  googleMissing,
  identifiersMeta,
  identifiersOf,
  membershipResults,
  metaMissing,
  planMembership,
  sentIdentifiers,
  sha256Hex,
} from '../../src/destinations/platform-hash.js';

/**
 * Every normalisation rule of platform-hash.ts pinned to SHA-256 vectors computed outside the code
 * under test (`printf '%s' <normalised> | sha256sum`), so a rule and the hashing cannot drift together.
 */
const H = {
  'jane.doe@example.com': '86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d',
  'first.last@gmail.com': '3fba33b305fe1c0eeaf728b3b7aa3c668ae460a9807da214c47185d5e2befb98',
  '16505550101': 'bf2477365f332bd9914846c602c1bb7d8d8e3dc5bbf09bc7d0ae0477b5faa4eb',
  '+16505550101': '17f7a307c4808801381bb6af259a7f59ae92f63346316e5032c6e2939363881f',
  '442079460958': '35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823',
  '+442079460958': 'f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d',
  obriensmith: '16765783f9c8c8a3accf27f1abb877688cb5904c21a4a7afb5f125bcfcb246ba',
  "o'brien-smith": '5349291f7c643970cc1b897c8ffb45a8b630e59c1fecc3d1e4dc8e292a7971a9',
  'josé': 'd994e1d001886fe5b45b1267bd1fa2b752ac50742579bd3dad7b2a2aa0ed6866',
  maryann: '16b3f07f0ec2f9dd127b71dc2e6c791b7d93116a1c3bc99d057eaa7a8a077e73',
  'mary ann': '343b97011010c3549fe7fcd6c226ed9431ea37b0b77ed78f6300a0098925faf1',
  j: '189f40034be7a199f1fa9891668ee3ab6049f82d38c68be70f596eab2e1857b7',
  m: '62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a',
  f: '252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111',
  '1987': '744b93f9950fc38dad705556931ea48193b99dcb191cc9bd77097f65fbe2f0b8',
  '03': '0b8efa5a3bf104413a725c6ff0459a6be12b1fd33314cbb138745baf39504ae5',
  '07': '19b100ab7725c612f3d80ff203ca53cea5cadaafae3bf0f88f0fb4089fe08815',
  menlopark: '0007a3d64c01e23d5075203c5977c14e4f7e01a3fc570686fcc50b5e1dd42685',
  ca: '6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126',
  '94025': 'b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7',
  sw1a1aa: '830e1d4b9838bab1f5c2acdb23e0b502ff13a9832c4632e8d67a1d43d3b7f614',
  us: '79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621',
} as const;

const meta = (payload: Record<string, unknown>) => identifiersOf(META_RULES, payload);
const google = (payload: Record<string, unknown>) => identifiersOf(GOOGLE_RULES, payload);

describe('sha256Hex', () => {
  it('is lower-case hex of the UTF-8 bytes', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('josé')).toBe(H['josé']);
  });
});

describe('Meta normalisation', () => {
  it.each([
    ['email: trim and lower-case', { email: '  Jane.Doe@Example.COM \n' }, { email: H['jane.doe@example.com'] }],
    ['phone: digits with country code, no +', { phone: '+1 (650) 555-0101' }, { phone: H['16505550101'] }],
    ['phone: an 00 international prefix is a leading zero', { phone: '00 44 20 7946 0958' }, { phone: H['442079460958'] }],
    ['phone: a number typed as a number', { phone: 16505550101 }, { phone: H['16505550101'] }],
    ['names: lower-case letters only, no punctuation or spaces', { first_name: ' Mary Ann ', last_name: "O'Brien-Smith" }, { first_name: H.maryann, last_name: H.obriensmith }],
    ['names: letters of any script kept (UTF-8)', { first_name: 'JOSÉ' }, { first_name: H['josé'] }],
    ['first initial: the first letter', { first_initial: ' J. ' }, { first_initial: H.j }],
    ['gender: m or f', { gender: 'Female' }, { gender: H.f }],
    ['gender: M', { gender: 'M' }, { gender: H.m }],
    ['birth date: YYYY, MM, DD', { birth_year: 1987, birth_month: '3', birth_day: ' 07' }, { birth_year: H['1987'], birth_month: H['03'], birth_day: H['07'] }],
    ['city: no spaces or punctuation', { city: 'Menlo Park' }, { city: H.menlopark }],
    ['state: lower-case code', { state: 'CA' }, { state: H.ca }],
    ['zip: the part before a dash', { zip: '94025-1234' }, { zip: H['94025'] }],
    ['zip: UK postcode without spaces', { zip: 'SW1A 1AA' }, { zip: H.sw1a1aa }],
    ['country: ISO alpha-2, lower-case', { country: ' US ' }, { country: H.us }],
    ['madid: in clear, lower-case', { madid: ' AECE52E7-03EE-455A-B3C4-E57283966239 ' }, { madid: 'aece52e7-03ee-455a-b3c4-e57283966239' }],
    ['external_id: in clear, trimmed', { external_id: ' CRM-42 ' }, { external_id: 'CRM-42' }],
    ['an already hashed value passes through, lower-cased', { email: H['jane.doe@example.com'].toUpperCase() }, { email: H['jane.doe@example.com'] }],
    ['NULL and blank values are absent', { email: null, phone: '   ', first_name: undefined }, {}],
  ] as [string, Record<string, unknown>, Record<string, string>][])('%s', (_name, payload, values) => {
    expect(meta(payload)).toEqual({ values, dropped: [] });
  });

  it.each([
    ['an email without @', { email: 'jane.doe.example.com' }, 'email'],
    ['an email with a space', { email: 'jane doe@example.com' }, 'email'],
    ['a phone with too few digits', { phone: '55-0101' }, 'phone'],
    ['a phone with more than 15 digits', { phone: '+1 650 555 0101 0101 01' }, 'phone'],
    ['a name with no letters', { first_name: "-- '" }, 'first_name'],
    ['an unknown gender', { gender: 'x' }, 'gender'],
    ['a two-digit year', { birth_year: '87' }, 'birth_year'],
    ['month 13', { birth_month: 13 }, 'birth_month'],
    ['day 0', { birth_day: '0' }, 'birth_day'],
    ['a country name', { country: 'United States' }, 'country'],
  ] as [string, Record<string, unknown>, string][])('drops %s', (_name, payload, field) => {
    const result = meta(payload);
    expect(result.values).toEqual({});
    expect(result.dropped.map((d) => d.field)).toEqual([field]);
  });

  it('needs something to match on: demographics alone are not enough', () => {
    expect(metaMissing(meta({ gender: 'f', birth_year: 1987, country: 'us', zip: '94025' }).values)).toMatch(/map at least one of email, phone/);
    expect(metaMissing(meta({ first_name: 'Jane' }).values)).toBeDefined();
    expect(metaMissing(meta({ first_name: 'Jane', last_name: 'Doe' }).values)).toBeUndefined();
    expect(metaMissing(meta({ first_initial: 'J', last_name: 'Doe' }).values)).toBeUndefined();
    expect(metaMissing(meta({ external_id: 'CRM-42' }).values)).toBeUndefined();
  });
});

describe('Google normalisation', () => {
  it.each([
    ['email: trim and lower-case', { email: ' Jane.Doe@Example.COM ' }, { email: H['jane.doe@example.com'] }],
    ['email: gmail dots kept (Customer Match does not ask to remove them)', { email: 'First.Last@gmail.com' }, { email: H['first.last@gmail.com'] }],
    ['phone: E.164 with the +', { phone: '+1 (650) 555-0101' }, { phone: H['+16505550101'] }],
    ['phone: 00 prefix becomes +', { phone: '0044 20 7946 0958' }, { phone: H['+442079460958'] }],
    ['names: trim and lower-case, punctuation and inner spaces kept', { first_name: ' Mary Ann ', last_name: "O'Brien-Smith" }, { first_name: H['mary ann'], last_name: H["o'brien-smith"] }],
    ['country and zip in clear', { country: 'us', zip: ' 94025 ' }, { country: 'US', zip: '94025' }],
    ['an already hashed phone passes through', { phone: H['+16505550101'] }, { phone: H['+16505550101'] }],
  ] as [string, Record<string, unknown>, Record<string, string>][])('%s', (_name, payload, values) => {
    expect(google(payload)).toEqual({ values, dropped: [] });
  });

  it('drops what is not usable, with what was expected', () => {
    expect(google({ email: 'nope', phone: '12', country: 'USA' })).toEqual({
      values: {},
      dropped: [
        { field: 'email', expects: 'an email address' },
        { field: 'phone', expects: 'a phone number with its country code (7 to 15 digits)' },
        { field: 'country', expects: 'a two-letter ISO 3166-1 country code' },
      ],
    });
  });

  it('matches an address only when all four parts are there', () => {
    expect(googleMissing(google({ first_name: 'Jane', last_name: 'Doe', country: 'US' }).values)).toMatch(/first_name, last_name, country and zip together/);
    expect(googleMissing(google({ first_name: 'Jane', last_name: 'Doe', country: 'US', zip: '94025' }).values)).toBeUndefined();
    expect(googleMissing(google({ phone: '+16505550101' }).values)).toBeUndefined();
  });
});

describe('membership plan', () => {
  const record = (op: OutboundRecord['op'], key: string, payload: Record<string, unknown>, extra: Partial<OutboundRecord> = {}): OutboundRecord => ({
    op, key, idempotencyKey: `i-${key}`, payloadHash: `h-${key}`, payload, ...(op === 'remove' ? { removal: 'delete' as const } : {}), ...extra,
  });

  it('adds, removes from the identifiers sent last, and rejects records with nothing to match, never quoting the value', () => {
    const sent = identifiersMeta({ email: H['first.last@gmail.com'] });
    const batch = [
      record('add', '1', { email: 'jane.doe@example.com' }),
      record('add', '2', { email: 'not an email', gender: 'f' }),
      record('remove', '3', { email: 'jane.doe@example.com' }, { meta: sent }),
      record('remove', '4', { email: 'jane.doe@example.com' }),
    ];
    const plan = planMembership(batch, META_RULES, metaMissing);
    expect(plan.additions.map((m) => [m.record.key, m.values])).toEqual([['1', { email: H['jane.doe@example.com'] }]]);
    // What was sent wins over the last payload; without it, the payload is normalised again.
    expect(plan.removals.map((m) => [m.record.key, m.values])).toEqual([['3', { email: H['first.last@gmail.com'] }], ['4', { email: H['jane.doe@example.com'] }]]);
    expect(plan.rejected).toEqual([{ key: '2', ok: false, reason: expect.stringMatching(/^no usable identifier: map at least one of email.*\(email is not an email address\)$/) }]);
    expect(plan.rejected[0]!.ok === false && plan.rejected[0]!.reason).not.toContain('not an email,');

    const results = membershipResults(batch, plan, new Map([['4', 'refused']]));
    expect(results).toEqual([
      { key: '1', ok: true, meta: { identifiers: JSON.stringify({ email: H['jane.doe@example.com'] }) } },
      plan.rejected[0],
      { key: '3', ok: true },
      { key: '4', ok: false, reason: 'refused' },
    ]);
    expect(sentIdentifiers(results[0]!.ok ? results[0]!.meta : undefined)).toEqual({ email: H['jane.doe@example.com'] });
  });

  it('a change with new identifiers removes the old set and adds the new; an unchanged set is only added again', () => {
    const old = identifiersMeta({ email: H['jane.doe@example.com'], phone: H['+16505550101'] });
    const plan = planMembership([
      record('change', '1', { email: 'jane.doe@example.com', phone: '+44 20 7946 0958' }, { meta: old }),
      record('change', '2', { email: ' JANE.DOE@example.com', phone: '+1 650 555 0101' }, { meta: old }),
    ], GOOGLE_RULES, googleMissing);
    expect(plan.removals.map((m) => [m.record.key, m.values])).toEqual([['1', { email: H['jane.doe@example.com'], phone: H['+16505550101'] }]]);
    expect(plan.additions.map((m) => [m.record.key, m.values])).toEqual([
      ['1', { email: H['jane.doe@example.com'], phone: H['+442079460958'] }],
      ['2', { email: H['jane.doe@example.com'], phone: H['+16505550101'] }],
    ]);
  });
});
