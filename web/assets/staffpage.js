// @ts-check
// The start of every staff page (case review, statistics, administration): who is signed in,
// or why the page cannot open. A missing token or an ended session goes to the login page.

import { api } from './api.js';
import { $, STAFF_TOKEN_KEY, fill, forgetToken, goToLogin, showView } from './common.js';

/**
 * Shows the page's setup view with a title and a message.
 * @param {string} title
 * @param {string} message
 */
export function showSetup(title, message) {
  fill($('#setup-title'), title);
  fill($('#setup-message'), message);
  showView('setup');
}

/**
 * The signed-in staff member (`/api/me`) when their role is one of `roles`. Otherwise `null`,
 * after sending the browser to the login page (no token, an ended session) or showing, with
 * `setup`, that the page could not load or is not for this role (`notYours`).
 * @param {string | null} token
 * @param {string[]} roles
 * @param {string} notYours
 * @param {(title: string, message: string) => void} [setup]
 * @returns {Promise<any>}
 */
export async function signedInStaff(token, roles, notYours, setup = showSetup) {
  if (!token) {
    goToLogin();
    return null;
  }
  let me;
  try {
    me = await api('/api/me', { token });
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    if (err.status === 401) {
      forgetToken(STAFF_TOKEN_KEY);
      goToLogin();
      return null;
    }
    setup('打不开', err.message);
    return null;
  }
  if (!roles.includes(me?.role)) {
    setup('这个页面不是给您用的', notYours);
    return null;
  }
  return me;
}
