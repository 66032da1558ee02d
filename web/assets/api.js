// @ts-check
// HTTP API client: same-origin fetch with a bearer token; every failure becomes an ApiError
// whose message is plain Chinese that can be shown to the user as it is.

const CODE_MESSAGES = {
  bad_credentials: '用户名或密码不对,请再试一次',
  password_change_required: '请先修改密码:请重新登录,按提示设置新密码',
  bad_enrolment_code: '开通码不对,或者已经用过、已经过期',
  unauthorized: '登录已过期或凭证无效,请重新登录',
  forbidden: '您没有权限做这件事',
  not_found: '没有找到要找的内容',
  conflict: '这件事已经有人处理了',
  no_window: '镇上暂时没有窗口能办理这个事项',
  rate_limited: '操作太频繁了,请稍等一下再试',
  too_large: '内容太大了,无法发送',
  bad_message: '请求有误,请刷新页面后再试',
  internal: '服务器出了点问题,请稍后再试',
};

export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string}} [options]
   */
  constructor(message, { status = 0, code = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Plain Chinese words for an error code (HTTP or WebSocket), with the server's text as fallback. */
export function messageForCode(code, fallback) {
  return CODE_MESSAGES[code] || fallback || '出了点问题,请稍后再试';
}

/**
 * `api('/api/matters', {token})`, `api('/api/login', {method: 'POST', body: {...}})`.
 * Resolves to the parsed JSON body (or null for 204); rejects with ApiError.
 * @param {string} path
 * @param {{ method?: string, body?: any, token?: string | null, signal?: AbortSignal }} [options]
 * @returns {Promise<any>}
 */
export async function api(path, { method = 'GET', body, token, signal } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError('连不上服务器,请检查网络后再试', { status: 0, code: 'network' });
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const code = data?.error?.code || (response.status === 401 ? 'unauthorized' : response.status === 403 ? 'forbidden' : response.status >= 500 ? 'internal' : '');
    throw new ApiError(messageForCode(code, data?.error?.message), { status: response.status, code });
  }
  return data;
}
