// @ts-check
// Staff login. A fragment `#user=..&password=..[&next=/window]` (printed by the demo) fills
// the form and submits it at once; `#next=/path` alone only says where to go afterwards.
import { api } from './api.js';
import { $, STAFF_TOKEN_KEY, clearFragment, fragmentParams } from './common.js';

const HOME_BY_ROLE = { approver: '/window', chief: '/window', dispatcher: '/dispatcher', supervisor: '/review', admin: '/admin' };

/** Only same-origin paths ("/window"), never "//host" or "https://…". */
function safeNext(next) {
  return typeof next === 'string' && /^\/(?![/\\])/.test(next) ? next : null;
}

const form = $('#login-form');
const username = $('#username');
const password = $('#password');
const button = $('#login-button');
const errorBox = $('#login-error');

const params = fragmentParams();
const next = safeNext(params.get('next'));
const autoUser = params.get('user');
const autoPassword = params.get('password');
// Never keep a password in the address bar or the history.
if (location.hash) clearFragment();

async function login() {
  errorBox.hidden = true;
  if (!username.value.trim() || !password.value) {
    errorBox.textContent = '请填写用户名和密码';
    errorBox.hidden = false;
    (username.value.trim() ? password : username).focus();
    return;
  }
  button.disabled = true;
  button.textContent = '正在登录…';
  try {
    const result = await api('/api/login', {
      method: 'POST',
      body: { username: username.value.trim(), password: password.value },
    });
    localStorage.setItem(STAFF_TOKEN_KEY, result.token);
    location.replace(next ?? HOME_BY_ROLE[result.user?.role] ?? '/');
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
    button.disabled = false;
    button.textContent = '登录';
    password.select();
    password.focus();
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  login();
});

if (autoUser && autoPassword) {
  username.value = autoUser;
  password.value = autoPassword;
  login();
} else {
  if (autoUser) username.value = autoUser;
  (autoUser ? password : username).focus();
}
