// The management API client. The credential is kept in sessionStorage only
// (gone when the tab closes; never a cookie, never localStorage, never in a
// URL) and travels only in the Authorization header of same-origin fetches.

const KEY = 'switchboard.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};

// An error answer: the API's own words (`{"code", "message", "details"?}`).
export class ApiError extends Error {
  constructor(status, body, fallback) {
    const message = body && typeof body.message === 'string' ? body.message : fallback;
    super(message);
    this.status = status;
    this.code = body && body.code;
    this.details = body && (body.details || body.error);
  }
}

// Called with every 401, so the app can ask to sign in again.
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export async function request(method, path, { query, body } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, null, `cannot reach Switchboard (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const error = new ApiError(res.status, data, `HTTP ${res.status} ${res.statusText}`.trim());
    if (res.status === 401) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, body) => request('POST', path, { body });
export const patch = (path, body) => request('PATCH', path, { body });

// Every record of a paginated list, following `next_cursor` up to `maxPages`.
// `truncated` says the listing went on.
export async function getAll(path, query = {}, maxPages = 10) {
  const records = [];
  let cursor;
  for (let page = 0; page < maxPages; page++) {
    const answer = await get(path, { ...query, limit: 200, cursor });
    records.push(...answer.records);
    cursor = answer.next_cursor;
    if (!cursor) return { records, truncated: false };
  }
  return { records, truncated: true };
}

// `/api/v1/workspaces/{ws}/...` with every segment encoded.
export function ws(workspace, ...segments) {
  return ['/api/v1/workspaces', workspace, ...segments].map((s, i) => (i ? encodeURIComponent(s) : s)).join('/');
}
