// REST calls to the canvasflow API. Same-origin fetches carry the HttpOnly session
// cookie and an Origin header, so the server's CSRF check passes without a token.

/** An error answered by the API: `status`, machine-readable `code`, human `message`. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    /** the error's other members: `current` and `patch` of a 409 conflict, `role`, `reason`… */
    this.details = details;
  }
}

let onUnauthenticated = () => {};

/** Register what happens when a call answers 401 (the session ended). */
export function setUnauthenticatedHandler(fn) {
  onUnauthenticated = fn;
}

/** Call the API; JSON in and out. Resolves to the decoded body (null for 204). */
export async function request(method, path, body, { quiet401 = false, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network_error", "Cannot reach the server. Check your connection.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    const err = new ApiError(
      response.status,
      (error && error.code) || `http_${response.status}`,
      (error && error.message) || `The server answered ${response.status}.`,
      error || {},
    );
    if (response.status === 401 && !quiet401 && path !== "/api/auth/login") onUnauthenticated(err);
    throw err;
  }
  return data;
}

const idempotency = (key) => (key ? { "Idempotency-Key": key } : {});

export const api = {
  me: () => request("GET", "/api/auth/me", undefined, { quiet401: true }),
  signup: (email, password) => request("POST", "/api/auth/signup", { email, password }),
  login: (email, password) => request("POST", "/api/auth/login", { email, password }),
  logout: () => request("POST", "/api/auth/logout"),

  listProjects: () => request("GET", "/api/projects"),
  createProject: (name) => request("POST", "/api/projects", { name }),
  getProject: (id) => request("GET", `/api/projects/${id}`),
  renameProject: (id, name) => request("PATCH", `/api/projects/${id}`, { name }),
  deleteProject: (id) => request("DELETE", `/api/projects/${id}`),

  listNodes: (projectId) => request("GET", `/api/projects/${projectId}/nodes`),
  createNode: (projectId, node) => request("POST", `/api/projects/${projectId}/nodes`, node),
  updateNode: (id, patch) => request("PATCH", `/api/nodes/${id}`, patch),
  deleteNode: (id) => request("DELETE", `/api/nodes/${id}`),

  listConnections: (projectId) => request("GET", `/api/projects/${projectId}/connections`),
  /** Into the target's input port `targetPort` (null: the first that fits, as the server picks). */
  createConnection: (projectId, sourceId, targetId, targetPort = null) =>
    request("POST", `/api/projects/${projectId}/connections`, {
      source_id: sourceId,
      target_id: targetId,
      ...(targetPort ? { target_port: targetPort } : {}),
    }),
  deleteConnection: (id) => request("DELETE", `/api/connections/${id}`),

  /** Nodes (with media keys the user may read) and the connections among them, in one call. */
  paste: (projectId, nodes, connections) =>
    request("POST", `/api/projects/${projectId}/paste`, { nodes, connections }),

  uploadImage: (projectId, nodeId, file) => {
    const form = new FormData();
    form.append("file", file);
    form.append("node_id", nodeId);
    return request("POST", `/api/projects/${projectId}/uploads`, form);
  },

  /** `idempotencyKey`: the same key (one Generate click, retried) answers the same job. */
  generateVideo: (params, idempotencyKey) => request("POST", "/api/ai/generate-video", params, { headers: idempotency(idempotencyKey) }),
  generateImage: (params, idempotencyKey) => request("POST", "/api/ai/generate-image", params, { headers: idempotency(idempotencyKey) }),
  /** `{cost, currency, budget_remaining}` of a generate body; refused as generate would refuse it. */
  estimateVideo: (params) => request("POST", "/api/ai/estimate", params),
  estimateImage: (params) => request("POST", "/api/ai/estimate-image", params),
  /** `{period, period_start, spent, reserved, remaining, budget, currency}`; budget null: unlimited. */
  usage: () => request("GET", "/api/me/usage"),
  nodeTypes: () => request("GET", "/api/node-types"),
  listTakes: (nodeId, before = null) => request("GET", `/api/nodes/${nodeId}/takes?limit=100${before ? `&before=${before}` : ""}`),
  setActiveTake: (nodeId, takeId) => request("PUT", `/api/nodes/${nodeId}/active-take`, { take_id: takeId }),
  deleteTake: (takeId) => request("DELETE", `/api/takes/${takeId}`),

  listMembers: (projectId) => request("GET", `/api/projects/${projectId}/members`),
  addMember: (projectId, email, role) => request("POST", `/api/projects/${projectId}/members`, { email, role }),
  setMemberRole: (projectId, userId, role) => request("PATCH", `/api/projects/${projectId}/members/${userId}`, { role }),
  removeMember: (projectId, userId) => request("DELETE", `/api/projects/${projectId}/members/${userId}`),
  createInvite: (projectId, role) => request("POST", `/api/projects/${projectId}/invites`, { role }),
  acceptInvite: (token) => request("POST", `/api/invites/${encodeURIComponent(token)}/accept`),
  getJob: (jobId) => request("GET", `/api/ai/jobs/${jobId}`),
  latestJob: (nodeId) => request("GET", `/api/ai/nodes/${nodeId}/jobs/latest`),
  cancelJob: (jobId) => request("POST", `/api/ai/jobs/${jobId}/cancel`),
};
