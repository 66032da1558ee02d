// @ts-check
// Public progress page (/progress?case=...&code=...): no login; the case number and the lookup
// code come from the QR code on the receipt, the villager adds the last four digits of the phone.
import { $ } from './common.js';
import { setupProgressLookup } from './progressform.js';

const lookup = setupProgressLookup($('#progress-form'), $('#progress-result'));
const params = new URLSearchParams(location.search);
lookup.fill(params.get('case')?.trim() ?? '', params.get('code')?.replace(/\D/g, '') ?? '');
