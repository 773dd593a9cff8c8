// The participant REST calls the room and the end view make with the join token
// (docs/api.md): the saved plan (JSON or Markdown), the hand-off brief, the plan's changes
// since the previous consult, the measures trend. Errors are RFC 9457 problems with a `code`.

const REQUEST_TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.status = status;
    this.code = code;
  }
}

export class RoomApi {
  constructor({ consultId, token }) {
    this.base = `/api/v1/consults/${encodeURIComponent(consultId)}/session`;
    this.token = token;
  }

  /** GET `path` under the session; JSON by default, text for another `accept`. */
  async get(path, { accept = "application/json" } = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(this.base + path, {
        headers: { Authorization: `Bearer ${this.token}`, Accept: accept },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
        signal: controller.signal,
      });
    } catch {
      throw new ApiError(0, "network_error");
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        // not a problem document (a proxy's page, say)
      }
      const code = body && typeof body.code === "string" ? body.code : `http_${response.status}`;
      throw new ApiError(response.status, code, body?.detail);
    }
    return accept === "application/json" ? response.json() : response.text();
  }

  plan() {
    return this.get("/plan");
  }

  planMarkdown() {
    return this.get("/plan", { accept: "text/markdown" });
  }

  cliniciansNotes() {
    return this.get("/notes/clinicians");
  }

  brief() {
    return this.get("/brief");
  }

  planChanges() {
    return this.get("/plan/changes");
  }

  measures() {
    return this.get("/measures");
  }
}

/** A 404 whose code says the server has no such route yet (an older server), not "none". */
export function routeMissing(error) {
  return error instanceof ApiError && error.status === 404 && error.code === "not_found";
}
