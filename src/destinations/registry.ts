import type { DestinationType } from './destination.js';
import { brazeDestination, brazeEventsDestination } from './braze.js';
import { fileDestination } from './file.js';
import { googleAdsDestination } from './google-ads.js';
import { hubspotDestination } from './hubspot.js';
import { klaviyoDestination } from './klaviyo.js';
import { metaAudienceDestination } from './meta-audiences.js';
import { salesforceDestination } from './salesforce.js';
import { webhookDestination } from './webhook.js';

/** Connectors by contract `type`. Tests (and future plugins) add their own with `registerDestinationType`. */
const types = new Map<string, DestinationType>([[fileDestination.type, fileDestination], [webhookDestination.type, webhookDestination], [hubspotDestination.type, hubspotDestination], [salesforceDestination.type, salesforceDestination], [brazeDestination.type, brazeDestination], [brazeEventsDestination.type, brazeEventsDestination], [klaviyoDestination.type, klaviyoDestination], [metaAudienceDestination.type, metaAudienceDestination], [googleAdsDestination.type, googleAdsDestination]]);

export function destinationType(type: string): DestinationType | undefined {
  return types.get(type);
}

export function destinationTypeNames(): string[] {
  return [...types.keys()].sort();
}

export function registerDestinationType(type: DestinationType): () => void {
  const previous = types.get(type.type);
  types.set(type.type, type);
  return () => {
    if (previous) types.set(type.type, previous);
    else types.delete(type.type);
  };
}
