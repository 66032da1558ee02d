// @ts-check
// Staff login. A fragment `#user=..&password=..[&next=/window]` (printed by the demo) fills
// the form and submits it at once; `#next=/path` alone only says where to go afterwards.
// A login with a temporary password (`must_change_password`) shows the change-password form
// first (`POST /api/password`), then goes on as usual.
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
    const home = next ?? HOME_BY_ROLE[result.user?.role] ?? '/';
    if (result.must_change_password) {
      askNewPassword(result.token, password.value, home);
      return;
    }
    location.replace(home);
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
    button.disabled = false;
    button.textContent = '登录';
    password.select();
    password.focus();
  }
}

/**
 * The temporary password must be replaced before anything else works.
 * @param {string} token
 * @param {string} oldPassword
 * @param {string} home
 */
function askNewPassword(token, oldPassword, home) {
  const changeForm = $('#change-form');
  const fresh = $('#new-password');
  const again = $('#new-password-again');
  const changeButton = $('#change-button');
  const changeError = $('#change-error');
  form.hidden = true;
  changeForm.hidden = false;
  fresh.focus();
  changeForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    changeError.hidden = true;
    const problem = fresh.value.length < 8 ? '新密码至少要8个字符'
      : fresh.value !== again.value ? '两次输入的新密码不一样,请再输入一次'
        : fresh.value === oldPassword ? '新密码不能和临时密码一样'
          : null;
    if (problem) {
      changeError.textContent = problem;
      changeError.hidden = false;
      fresh.focus();
      return;
    }
    changeButton.disabled = true;
    changeButton.textContent = '正在保存…';
    try {
      await api('/api/password', {
        method: 'POST',
        token,
        body: { old_password: oldPassword, new_password: fresh.value },
      });
      location.replace(home);
    } catch (err) {
      changeError.textContent = err.message;
      changeError.hidden = false;
      changeButton.disabled = false;
      changeButton.textContent = '保存新密码并继续';
    }
  });
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
