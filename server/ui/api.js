// Reads through the HTTP API, with the operator's read token when one is set.
//
// The token lives in sessionStorage: it is kept for this tab only, and sent as
// `Authorization: Bearer` exactly as every other client sends it.

const TOKEN_KEY = 'concord.readToken';

export function readToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function saveToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders() {
  const token = readToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A refused or failed read: the HTTP status (0: no answer) and the server's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  /** True when a (better) read token would help. */
  get needsToken() {
    return this.status === 401 || this.status === 403;
  }
}

/** GET `path` and return the envelope; throws ApiError with the server's message. */
export async function getJson(path) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Accept: 'application/json', ...authHeaders() },
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, `the server did not answer (${e.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: reported below with the status
  }
  if (!response.ok || !body || body.success === false) {
    const message = body?.message || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}
