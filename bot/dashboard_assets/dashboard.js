// Merge Assist dashboard: signs in through the JSON API, renders lanes, recent results and the
// audit log, and follows /api/v1/events (server-sent events read with fetch, so the access token
// travels in a header, never in a URL). Tokens live in memory only.
"use strict";

const API = "/api/v1";
const PRIORITIES = ["urgent", "high", "normal", "low"];
let tokens = null;
let streamAbort = null;
let auditCursor = null;
let latest = { lanes: [], recent: [] };

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

function since(iso) { return duration((Date.now() - Date.parse(iso)) / 1000); }

async function refreshTokens() {
  const response = await fetch(`${API}/auth/refresh`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: tokens.refresh_token }),
  });
  if (!response.ok) return false;
  tokens = await response.json();
  return true;
}

async function api(method, path, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const response = await fetch(API + path, {
      method, headers: { "Content-Type": "application/json", Authorization: `Bearer ${tokens.access_token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && attempt === 0 && tokens.refresh_token && await refreshTokens()) continue;
    if (response.status === 401) { signedOut("Your session has ended; sign in again."); throw new Error("signed out"); }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }
}

function status(text, isError = false) { const s = $("#status"); s.textContent = text; s.className = isError ? "status error" : "status"; }

async function act(method, path, body, done) {
  try { const result = await api(method, path, body); status(result.message || done); loadAudit(true); }
  catch (error) { status(error.message, true); }
}

function mrCell(entry) {
  const label = `!${entry.mr_iid} ${entry.title || ""}`.trim();
  return entry.web_url ? el("a", { href: entry.web_url, target: "_blank", rel: "noopener" }, label) : label;
}

function entryActions(entry, allowed) {
  const cell = el("td", { class: "actions" });
  if (allowed.includes("priority")) {
    const select = el("select", { class: "priority", "aria-label": `priority of !${entry.mr_iid}` },
      ...PRIORITIES.map((p) => { const o = el("option", { value: p }, p); if (p === entry.priority) o.selected = true; return o; }));
    cell.append(select, el("button", { class: "set-priority",
      onclick: () => act("POST", `/entries/${entry.id}/priority`, { priority: select.value }, "priority changed") }, "Set"));
  }
  if (allowed.includes("cancel")) {
    cell.append(el("button", { class: "cancel", onclick: () => {
      if (confirm(`Take !${entry.mr_iid} out of the queue?`)) act("POST", `/entries/${entry.id}/cancel`, undefined, "cancelled");
    } }, "Cancel"));
  }
  return cell;
}

function renderLanes() {
  const root = $("#lanes");
  root.replaceChildren();
  if (!latest.lanes.length) root.append(el("p", {}, "No merge requests are queued."));
  for (const lane of latest.lanes) {
    const branch = encodeURIComponent(lane.target_branch).replaceAll("%2F", "/");
    const lanePath = `/lanes/${lane.project_id}/${branch}/pause`;
    const heading = el("h3", {}, `${lane.project_path} → ${lane.target_branch} `);
    if (lane.paused) heading.append(el("span", { class: "paused" }, "paused"));
    if (lane.allowed.includes("manage_project")) {
      heading.append(el("button", { class: "pause",
        onclick: () => act(lane.paused ? "DELETE" : "POST", lanePath, undefined, lane.paused ? "resumed" : "paused") },
        lane.paused ? "Resume" : "Pause"));
    }
    const rows = lane.entries.map((e) => el("tr", { class: "entry", "data-entry-id": e.id, "data-mr": e.mr_iid },
      el("td", {}, e.position), el("td", {}, mrCell(e)), el("td", {}, e.author || e.requested_by),
      el("td", { class: `prio-${e.priority}` }, e.priority), el("td", {}, e.state.replace("_", " ")),
      el("td", { class: "reason" }, e.reason || "waiting for its turn"),
      el("td", { class: "waiting", "data-since": e.enqueued_at }, since(e.enqueued_at)),
      entryActions(e, lane.allowed)));
    root.append(el("div", { class: "lane", "data-lane": `${lane.project_id}:${lane.target_branch}` }, heading,
      el("table", {}, el("tr", {}, ...["#", "merge request", "author", "priority", "state", "why it waits", "waiting", ""]
        .map((h) => el("th", {}, h))), ...rows)));
  }
  const recent = $("#recent");
  recent.replaceChildren(el("table", {}, el("tr", {}, ...["project", "merge request", "result", "reason", "finished", "took"]
    .map((h) => el("th", {}, h))), ...latest.recent.map((e) => el("tr", {},
      el("td", {}, e.project_path), el("td", {}, mrCell(e)), el("td", { class: e.state }, e.state), el("td", {}, e.reason),
      el("td", {}, `${since(e.finished_at)} ago`), el("td", {}, duration(e.duration_seconds))))));
}

async function loadAudit(reset) {
  if (reset) auditCursor = null;
  const query = new URLSearchParams({ limit: "50" });
  for (const [key, value] of new FormData($("#audit-filter"))) if (value) query.set(key, value);
  if (auditCursor) query.set("cursor", auditCursor);
  try {
    const page = await api("GET", `/audit?${query}`);
    const rows = page.entries.map((a) => el("tr", {}, el("td", {}, new Date(a.at).toLocaleString()), el("td", {}, a.actor),
      el("td", {}, a.action), el("td", {}, a.target), el("td", {}, a.outcome), el("td", {}, a.detail)));
    const table = reset || !$("#audit table") ? el("table", {}, el("tr", {}, ...["when", "who", "action", "target", "outcome", "detail"]
      .map((h) => el("th", {}, h)))) : $("#audit table");
    table.append(...rows);
    if (reset) $("#audit").replaceChildren(table);
    auditCursor = page.next_cursor;
    $("#audit-more").hidden = !auditCursor;
  } catch (error) { status(error.message, true); }
}

async function follow() {
  streamAbort = new AbortController();
  while (tokens) {
    try {
      const response = await fetch(`${API}/events`, { headers: { Authorization: `Bearer ${tokens.access_token}` }, signal: streamAbort.signal });
      if (response.status === 401) { if (!(await refreshTokens())) return signedOut("Your session has ended; sign in again."); continue; }
      if (!response.ok) { status(`live updates unavailable (HTTP ${response.status})`, true); return; }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (event === "lanes") { latest = JSON.parse(data); renderLanes(); }
          if (event === "signed-out" && !(await refreshTokens())) return signedOut("Your session has ended; sign in again.");
        }
      }
    } catch (error) {
      if (streamAbort.signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function signedOut(message) {
  tokens = null;
  if (streamAbort) streamAbort.abort();
  latest = { lanes: [], recent: [] };
  $("#lanes").replaceChildren(); $("#recent").replaceChildren(); $("#audit").replaceChildren();
  $("#app").hidden = true; $("#signin").hidden = false; $("#sign-out").hidden = true; $("#who").textContent = "";
  $("#signin-error").textContent = message || "";
}

async function signIn(event) {
  event.preventDefault();
  $("#signin-error").textContent = "";
  const response = await fetch(`${API}/auth/token`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("#username").value, password: $("#password").value }),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { $("#signin-error").textContent = data.error || `HTTP ${response.status}`; return; }
  tokens = data;
  $("#password").value = "";
  const me = await api("GET", "/me");
  $("#who").textContent = `signed in as ${me.username}`;
  $("#signin").hidden = true; $("#app").hidden = false; $("#sign-out").hidden = false;
  loadAudit(true);
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", async () => { try { await api("POST", "/auth/sign-out"); } finally { signedOut(""); } });
  $("#audit-filter").addEventListener("submit", (event) => { event.preventDefault(); loadAudit(true); });
  $("#audit-more").addEventListener("click", () => loadAudit(false));
  setInterval(() => document.querySelectorAll("[data-since]").forEach((cell) => { cell.textContent = since(cell.dataset.since); }), 1000);
});
