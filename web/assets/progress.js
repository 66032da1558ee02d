// @ts-check
// Public progress page (/progress?case=...): no login; the case number comes from the QR code
// on the receipt, the villager adds the last four digits of the phone.
import { $ } from './common.js';
import { setupProgressLookup } from './progressform.js';

const lookup = setupProgressLookup($('#progress-form'), $('#progress-result'));
lookup.fill(new URLSearchParams(location.search).get('case')?.trim() ?? '');
