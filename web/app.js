// The clustermgr console: polls /dashboard/data every two seconds and renders it. Task switch
// toggles write through POST /config/set (a follower forwards it to the leader). The membership
// actions, the browsers (disks, volumes, services, KV, config) and the history charts are in the
// second half of this file; every request goes through authFetch, which signs it when the
// cluster wants tokens, and every write goes to the route a client uses.
//
// Switch values come in two spellings: "true"/"false" (CubeFS v3.2 and later) and
// "Enable"/"Disable" (the 2022 release); which one a cluster stores is its task_switch_format
// (docs/compatibility.md). The page reads either, writes in the spelling the switch has (the
// server turns it into the configured one anyway) and then shows what the server stored.
"use strict";

const REFRESH_MS = 2000;
const SWITCHES = ["disk_repair", "balance", "disk_drop", "blob_delete", "shard_repair",
  "vol_inspect", "volume_inspect", "data_inspect"];
// other names of the same switch, shown next to it
const ALIASES = { vol_inspect: "volume_inspect", volume_inspect: "vol_inspect" };
const DISK_STATES = [["available", "ok"], ["readonly", "warn"], ["expired", "warn"],
  ["broken", "bad"], ["repairing", "warn"], ["repaired", ""], ["dropping", "warn"],
  ["dropped", ""]];
const VOLUME_STATES = [["total_volume", "total"], ["idle_volume", "idle"],
  ["can_alloc_volume", "allocatable"], ["active_volume", "active"], ["lock_volume", "lock"],
  ["unlocking_volume", "unlocking"]];

const $ = (id) => document.getElementById(id);
let busy = new Set(); // switches with a write in flight
let timer = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function text(id, v) { $(id).textContent = v; }

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function duration(s) {
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function bar(frac, label, cls) {
  const pct = Math.max(0, Math.min(1, frac || 0)) * 100;
  const b = el("div", { class: "bar " + (cls || "") });
  const fill = el("span");
  fill.style.width = pct.toFixed(1) + "%";
  b.append(fill, el("em", {}, label));
  return b;
}

function renderSummary(d, rs, leaderStat) {
  const node = d.node;
  text("cluster", `region ${node.region || "–"} · cluster ${node.cluster_id}`);
  text("served-by", `node ${node.id} · ${node.is_leader ? "leader" : rs.raftState.replace("State", "").toLowerCase()}`);
  const h = $("health");
  h.className = "pill " + (node.ready ? "ok" : rs.leader ? "warn" : "bad");
  h.textContent = node.ready ? "healthy" : node.ready_reason;
  text("leader-id", rs.leader ? String(rs.leader) : "none");
  text("leader-host", d.stat.leader_host || "no leader known");
  text("term", String(rs.term));
  text("changes", `${d.leader_history.length} leader change(s) seen`);
  text("indexes", `${rs.commit} / ${rs.applied}`);
  text("ready", node.ready ? "caught up" : node.ready_reason);
  const voters = d.members.filter((m) => m.role === "voter").length;
  text("member-count", String(d.members.length));
  text("member-roles", `${voters} voter(s), ${d.members.length - voters} learner(s)`);
  text("version", `clustermgr ${node.version} · cluster version ${d.stat.cluster_version}`);
  text("log-level", node.log_level);
  text("uptime", duration(node.uptime_s));
}

function renderMembers(d, rs, leaderStat) {
  const peers = new Map();
  const lrs = leaderStat && leaderStat.raft_status;
  if (lrs && Array.isArray(lrs.peers)) for (const p of lrs.peers) peers.set(p.id, p);
  const note = $("members-note");
  if (!rs.leader) note.textContent = "No leader: replication progress is unknown.";
  else if (!lrs) note.textContent = "Replication progress comes from the leader, which did not answer: " + (d.leader_error || "");
  else note.textContent = d.node.is_leader ? "Replication progress as this node (the leader) sees it."
    : `Replication progress as reported by the leader (node ${rs.leader}).`;
  const tb = $("members").tBodies[0];
  tb.replaceChildren();
  for (const m of d.members) {
    const p = peers.get(m.id);
    const isLeader = m.id === rs.leader;
    const state = isLeader ? el("span", { class: "tag leader" }, "leader")
      : el("span", { class: "tag" }, m.role === "voter" ? "follower" : m.role);
    let lag = "–", repl = "–";
    if (p) {
      const l = Math.max(0, lrs.commit - p.match);
      lag = el("span", { class: "tag " + (l === 0 ? "ok" : l < 100 ? "warn" : "bad") }, String(l));
      repl = el("span", { class: "tag " + (p.active ? "ok" : "bad") },
        (p.active ? "" : "inactive · ") + p.state.replace("ProgressState", "").toLowerCase());
    }
    const http = m.http ? el("a", { href: "http://" + m.http + "/" }, m.http) : "–";
    tb.append(el("tr", { class: isLeader ? "leader" : "", "data-id": String(m.id) },
      el("td", {}, String(m.id)), el("td", {}, m.role), el("td", {}, state), el("td", {}, m.raft),
      el("td", {}, http), el("td", {}, p ? String(p.match) : "–"), el("td", {}, lag),
      el("td", {}, repl), el("td", {}, m.format_version ? String(m.format_version) : "?"),
      el("td", { class: "actions" }, ...memberActions(m, rs))));
  }
}

function renderSpace(ss) {
  const used = ss.total_space ? ss.used_space / ss.total_space : 0;
  $("space").replaceChildren(
    el("div", { class: "row" }, el("span", {}, "used of total"),
      el("span", {}, `${bytes(ss.used_space)} / ${bytes(ss.total_space)}`)),
    bar(used, ss.total_space ? (used * 100).toFixed(1) + "%" : "no space registered", "used"),
    el("div", { class: "row" }, el("span", {}, "writable"), el("span", {}, bytes(ss.writable_space))),
    el("div", { class: "row" }, el("span", {}, "free"), el("span", {}, bytes(ss.free_space))),
    el("div", { class: "row" }, el("span", {}, "blobnodes / disks"),
      el("span", {}, `${ss.total_blob_node} / ${ss.total_disk}`)));
  const box = $("idcs");
  box.replaceChildren();
  for (const i of ss.disk_stat_infos || []) {
    const chips = el("div", { class: "chips" });
    for (const [k, cls] of DISK_STATES) {
      const n = i[k] || 0;
      chips.append(el("span", { class: "chip " + (n ? cls : "zero"), "data-state": k },
        k + " ", el("b", {}, String(n))));
    }
    const usedChunks = i.total_chunk - i.total_free_chunk;
    box.append(el("div", { class: "idc", "data-idc": i.idc },
      el("div", { class: "row" }, el("span", { class: "name" }, i.idc),
        el("span", { class: "muted" }, `${i.total} disk(s)`)),
      chips,
      bar(i.total_chunk ? usedChunks / i.total_chunk : 0,
        i.total_chunk ? `${usedChunks} / ${i.total_chunk} chunks used` : "no chunks", "used")));
  }
}

function renderVolumes(vs) {
  const box = $("volumes");
  box.replaceChildren();
  const total = vs.total_volume || 0;
  for (const [k, name] of VOLUME_STATES) {
    const n = vs[k] || 0;
    box.append(el("div", { class: "vol", "data-status": name }, el("span", {}, name),
      bar(total ? n / total : 0, ""), el("span", { class: "n" }, String(n))));
  }
  if (!total) box.append(el("p", { class: "note" }, "No volumes yet."));
}

const switchOn = (v) => typeof v === "string" && /^(true|enable)$/i.test(v);
const spelled2022 = (v) => typeof v === "string" && /^(enable|disable)$/i.test(v);

// The switches the node reports, in a fixed order (a name both of whose spellings are reported
// is shown once, under the first).
function switchKeys(sw) {
  const keys = [...SWITCHES.filter((k) => k in sw), ...Object.keys(sw).filter((k) => !SWITCHES.includes(k))];
  return keys.filter((k) => !(ALIASES[k] && keys.indexOf(ALIASES[k]) !== -1 &&
    keys.indexOf(ALIASES[k]) < keys.indexOf(k)));
}

function renderSwitches(sw) {
  const box = $("switches");
  const keys = switchKeys(sw || {});
  if (box.dataset.keys !== keys.join(",")) {
    box.replaceChildren();
    box.dataset.keys = keys.join(",");
    for (const k of keys) {
      const input = el("input", { type: "checkbox", "data-key": k, id: "switch-" + k });
      input.addEventListener("change", () => toggle(k, input));
      const name = el("code", {}, k);
      if (ALIASES[k]) name.title = "also read as " + ALIASES[k];
      box.append(el("div", { class: "switch-row" }, name,
        ALIASES[k] ? el("span", { class: "muted" }, " = " + ALIASES[k]) : "",
        el("span", { class: "spacer" }),
        el("span", { class: "state", id: "state-" + k }),
        el("label", { class: "toggle" }, input, el("span", { class: "knob" }))));
    }
  }
  for (const k of keys) {
    if (busy.has(k)) continue;
    const v = sw[k];
    const input = $("switch-" + k);
    input.checked = switchOn(v);
    input.dataset.value = v == null ? "" : v;
    text("state-" + k, v == null ? "unset" : v);
  }
}


// ---- request tokens (when the cluster runs with auth.enable_auth) -------------------------
// The token is what CubeFS clients send: base64url(ts || MD5(path || query || ts || secret)),
// ts = Unix seconds as 8 little-endian bytes. The secret stays in this tab's session storage.

function md5(bytes) {
  const K = new Uint32Array(64), S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296);
  const n = bytes.length, padded = new Uint8Array(((n + 8) >> 6) * 64 + 64);
  padded.set(bytes);
  padded[n] = 0x80;
  const bits = n * 8, dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, bits >>> 0, true);
  dv.setUint32(padded.length - 4, Math.floor(bits / 4294967296), true);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  for (let off = 0; off < padded.length; off += 64) {
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (b & c) | (~b & d); g = i; }
      else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
      else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
      else { f = c ^ (b | ~d); g = (7 * i) % 16; }
      const t = d;
      d = c;
      c = b;
      const x = (a + f + K[i] + dv.getUint32(off + g * 4, true)) >>> 0;
      const sh = S[(i >> 4) * 4 + (i % 4)];
      b = (b + ((x << sh) | (x >>> (32 - sh)))) >>> 0;
      a = t;
    }
    a0 = (a0 + a) >>> 0; b0 = (b0 + b) >>> 0; c0 = (c0 + c) >>> 0; d0 = (d0 + d) >>> 0;
  }
  const out = new Uint8Array(16), ov = new DataView(out.buffer);
  [a0, b0, c0, d0].forEach((v, i) => ov.setUint32(i * 4, v, true));
  return out;
}

function authToken(pathAndQuery, secret, ts) {
  const [path, query = ""] = pathAndQuery.split("?", 2);
  const tsb = new Uint8Array(8), tv = new DataView(tsb.buffer);
  tv.setUint32(0, ts >>> 0, true);
  tv.setUint32(4, Math.floor(ts / 4294967296), true);
  const enc = new TextEncoder();
  const parts = [enc.encode(path), enc.encode(query), tsb, enc.encode(secret)];
  const msg = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { msg.set(p, o); o += p.length; }
  const raw = new Uint8Array(24);
  raw.set(tsb);
  raw.set(md5(msg), 8);
  return btoa(String.fromCharCode(...raw)).replace(/\+/g, "-").replace(/\//g, "_");
}

async function authFetch(url, opts = {}) {
  const secret = sessionStorage.getItem("clustermgr-secret");
  if (secret) {
    opts.headers = Object.assign({}, opts.headers || {},
      { "BLOB-STORE-AUTH-TOKEN": authToken(url, secret, Math.floor(Date.now() / 1000)) });
  }
  const r = await fetch(url, opts);
  if (r.status === 403) {
    $("auth").hidden = false;
    const why = (await r.clone().text()).slice(0, 200);
    const e = new Error(secret
      ? `the cluster refused this page's token (403 ${why}): check the secret above`
      : "this cluster requires a token: enter its secret above");
    e.auth = true;
    throw e;
  }
  return r;
}

function saveSecret() {
  sessionStorage.setItem("clustermgr-secret", $("auth-secret").value);
  $("auth").hidden = true;
  clearTimeout(timer);
  refresh();
  showView(); // reload what the current view shows, now signed
}

async function toggle(key, input) {
  const value = spelled2022(input.dataset.value) ? (input.checked ? "Enable" : "Disable")
    : (input.checked ? "true" : "false");
  busy.add(key);
  input.disabled = true;
  text("state-" + key, "…");
  const msg = $("switch-msg");
  try {
    const r = await authFetch("/config/set", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key, value }),
    });
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    // the value as stored, in the cluster's spelling
    let stored = value;
    try {
      const g = await authFetch("/config/get?key=" + encodeURIComponent(key), { cache: "no-store" });
      if (g.ok) stored = await g.json();
    } catch (e) { /* keep what was sent */ }
    msg.textContent = `${key} set to ${stored}`;
    text("state-" + key, stored);
    input.dataset.value = stored;
    input.checked = switchOn(stored);
  } catch (e) {
    input.checked = !input.checked;
    msg.textContent = `setting ${key} failed: ${e.message}`;
  } finally {
    busy.delete(key);
    input.disabled = false;
  }
}

function renderHistory(h) {
  const tb = $("history").tBodies[0];
  tb.replaceChildren();
  for (const e of h.slice(0, 12))
    tb.append(el("tr", {}, el("td", {}, e.time.replace("T", " ").replace(/\.\d+Z$/, "")),
      el("td", {}, String(e.term)), el("td", {}, String(e.leader))));
  if (!h.length) tb.append(el("tr", {}, el("td", { colSpan: 3, class: "muted" }, "none yet")));
}

async function refresh() {
  try {
    const r = await authFetch("/dashboard/data", { cache: "no-store" });
    if (!r.ok) throw new Error(`${r.status}`);
    const d = await r.json();
    const rs = d.stat.raft_status;
    const leaderStat = d.node.is_leader ? d.stat : d.leader_stat;
    renderSummary(d, rs, leaderStat);
    renderMembers(d, rs, leaderStat);
    renderSpace(d.stat.space_stat);
    renderVolumes(d.stat.volume_stat);
    renderSwitches(d.switches);
    renderHistory(d.leader_history);
    text("refreshed", new Date().toLocaleTimeString());
    text("served-addr", d.node.http ? "@ " + d.node.http : "");
    lastData = { d, rs, leaderStat };
    followChange();
    document.body.dataset.loaded = "1";
  } catch (e) {
    const h = $("health");
    h.className = "pill bad";
    h.textContent = (e.auth ? "" : "node unreachable: ") + e.message;
  } finally {
    clearTimeout(timer);
    // while a membership change is followed, every half second
    timer = setTimeout(refresh, following ? 500 : REFRESH_MS);
  }
}

// ---- actions: confirmation, the server's own answer, and following the change --------------

let lastData = null; // the last /dashboard/data with its raft status and the leader's /stat
let following = null; // {id, what, until}: a membership change the page is following

// GET or POST through authFetch; resolves to the parsed JSON body (null when empty), rejects
// with "<status>: <the server's error message>".
async function api(method, path, body) {
  const opts = { method, cache: "no-store" };
  if (body !== undefined) {
    opts.headers = { "Content-Type": "application/json" };
    opts.body = JSON.stringify(body);
  }
  const r = await authFetch(path, opts);
  const txt = await r.text();
  let data = null;
  try { data = txt ? JSON.parse(txt) : null; } catch (e) { data = txt; }
  if (!r.ok) {
    const msg = data && typeof data === "object" && data.error ? data.error : (txt || r.statusText);
    throw new Error(`${r.status}: ${msg}`);
  }
  return data;
}

function confirmAction(title, effect) {
  return new Promise((resolve) => {
    const d = $("confirm");
    text("confirm-title", title);
    text("confirm-effect", effect);
    d.returnValue = "";
    d.onclose = () => resolve(d.returnValue === "ok");
    d.showModal();
  });
}

function say(id, msg, ok) {
  const e = $(id);
  e.textContent = msg;
  e.className = "note " + (ok === true ? "ok" : ok === false ? "bad" : "");
  text("last-action", msg.length > 90 ? msg.slice(0, 90) + "…" : msg);
}

// Ask, run, and report: `run` returns the success message; a failure shows the server's message.
async function act(msgId, title, effect, run) {
  if (!(await confirmAction(title, effect))) {
    say(msgId, `${title}: cancelled`);
    return false;
  }
  say(msgId, `${title}: sent…`);
  try {
    say(msgId, await run(), true);
    return true;
  } catch (e) {
    say(msgId, `${title} failed: ${e.message}`, false);
    return false;
  }
}

// ---- membership ------------------------------------------------------------------------

const tolerates = (voters) => Math.max(0, Math.floor((voters - 1) / 2));
function votersNow() {
  return lastData ? lastData.d.members.filter((m) => m.role === "voter").length : 0;
}
function faultText(voters) {
  if (!lastData) return "the current membership is unknown to this page";
  return `${voters} voter(s): the cluster then tolerates ${tolerates(voters)} failure(s)`;
}

function memberActions(m, rs) {
  const out = [];
  if (m.role === "learner") out.push(actButton("promote", "data-id", m.id, "promote", () => promote(m.id)));
  if (m.role === "voter" && m.id !== rs.leader)
    out.push(actButton("transfer", "data-id", m.id, "make leader", () => transfer(m.id)));
  out.push(actButton("remove", "data-id", m.id, "remove", () => removeMember(m)));
  return out;
}

function follow(id, what) {
  following = { id, what, until: Date.now() + 30000 };
  clearTimeout(timer);
  timer = setTimeout(refresh, 300);
}

// Called after each refresh: says how the followed change is going, from /dashboard/data.
function followChange() {
  if (!following || !lastData) return;
  const { d, rs, leaderStat } = lastData;
  const { id, what } = following;
  const m = d.members.find((x) => x.id === id);
  const peers = (leaderStat && leaderStat.raft_status && leaderStat.raft_status.peers) || [];
  const p = peers.find((x) => x.id === id);
  let msg = null, done = false;
  if (what === "add") {
    if (!m) msg = `node ${id}: waiting for the configuration change`;
    else if (!p) msg = `node ${id} joined as ${m.role}; waiting for the leader's progress`;
    else {
      const lag = Math.max(0, leaderStat.raft_status.commit - p.match);
      done = lag === 0 && p.active;
      msg = done ? `node ${id} has caught up (match ${p.match}), ${m.role}`
        : `node ${id} is catching up: ${lag} entries behind`;
    }
  } else if (what === "promote") {
    done = m && m.role === "voter";
    msg = done ? `node ${id} votes now; ${faultText(votersNow())}` : `node ${id}: promotion pending`;
  } else if (what === "transfer") {
    done = rs.leader === id;
    msg = done ? `node ${id} is the leader (term ${rs.term})`
      : `leadership moving to node ${id} (leader now: ${rs.leader || "none"})`;
  } else if (what === "remove") {
    done = !m;
    msg = done ? `node ${id} left the configuration; ${faultText(votersNow())}`
      : `node ${id}: removal pending`;
  }
  $("member-msg").dataset.follow = done ? "done" : "pending";
  if (msg) say("member-msg", msg, done ? true : undefined);
  if (done || Date.now() > following.until) following = null;
}

async function addMember(e) {
  e.preventDefault();
  const id = Number($("add-id").value), raft = $("add-raft").value.trim();
  const http = $("add-http").value.trim(), type = Number($("add-type").value);
  const v = votersNow();
  const effect = type === 1
    ? `node ${id} (${raft}) will join as a learner: it receives the log but does not vote; ` +
      `still ${faultText(v)}.`
    : `node ${id} (${raft}) will join and vote at once, before it has caught up; ${faultText(v + 1)}.`;
  const body = { peer_id: id, host: raft, member_type: type };
  if (http) body.node_host = http;
  if (await act("member-msg", `Add node ${id}`, effect, async () => {
    await api("POST", "/member/add", body);
    return `node ${id} added`;
  })) follow(id, "add");
}

async function promote(id) {
  if (await act("member-msg", `Promote node ${id}`,
    `node ${id} will start voting; ${faultText(votersNow() + 1)}.`, async () => {
      await api("POST", "/member/promote", { peer_id: id });
      return `node ${id} promoted`;
    })) follow(id, "promote");
}

async function transfer(id) {
  if (await act("member-msg", `Transfer leadership to node ${id}`,
    `node ${id} will become the leader; writes wait for about one election while it takes over.`,
    async () => {
      await api("POST", "/leadership/transfer", { peer_id: id });
      return `leadership transfer to node ${id} started`;
    })) follow(id, "transfer");
}

async function removeMember(m) {
  const v = votersNow() - (m.role === "voter" ? 1 : 0);
  const effect = m.role === "voter"
    ? `node ${m.id} will stop voting and leave the cluster; ${faultText(v)}.`
    : `node ${m.id} (a ${m.role}) will leave the cluster; ${faultText(v)}.`;
  if (await act("member-msg", `Remove node ${m.id}`, effect, async () => {
    await api("POST", "/member/remove", { peer_id: m.id });
    return `node ${m.id} removed`;
  })) follow(m.id, "remove");
}

// ---- views ----------------------------------------------------------------------------

const VIEWS = { overview: null, disks: loadDisks, volumes: loadVolumes, services: loadServices,
  kv: loadKV, config: loadConfig, "history-charts": loadHistory };
let histTimer = null;

function showView() {
  const name = (location.hash || "#overview").slice(1);
  const view = name in VIEWS ? name : "overview";
  for (const v of Object.keys(VIEWS)) $("view-" + v).hidden = v !== view;
  document.querySelectorAll("#tabs a").forEach((a) =>
    a.classList.toggle("active", a.dataset.view === view));
  clearTimeout(histTimer);
  if (VIEWS[view]) VIEWS[view]();
}

function cell(...c) { return el("td", {}, ...c); }
function emptyRow(tb, cols, msg) {
  tb.append(el("tr", {}, el("td", { colSpan: cols, class: "muted" }, msg)));
}
// A browser's table: its rows, or one row saying there is none; stamped for whoever waits on it.
function fillTable(id, rows, cols, none) {
  const tb = $(id).tBodies[0];
  tb.replaceChildren(...rows);
  if (!rows.length) emptyRow(tb, cols, none);
  $(id).dataset.loaded = String(Date.now());
}
function listFailed(id, cols, what, msgId, e) {
  fillTable(id, [], cols, `cannot list ${what}: ${e.message}`);
  say(msgId, `listing ${what} failed: ${e.message}`, false);
}
// A row's action button; `key` names the row (data-id, data-vid) for tests and styles.
function actButton(act, key, id, label, fn) {
  const b = el("button", { type: "button", class: "small", "data-act": act, [key]: String(id) }, label);
  b.addEventListener("click", fn);
  return b;
}

// A pager over an API that continues after a marker: `pages` holds the marker of every page
// shown so far, so Prev goes back to the marker the previous page started from.
function pager(prefix, load) {
  const st = { pages: [""], next: null };
  $(prefix + "-filter").addEventListener("submit", (e) => { e.preventDefault(); st.pages = [""]; load(); });
  $(prefix + "-next").addEventListener("click", () => { if (st.next !== null) { st.pages.push(st.next); load(); } });
  $(prefix + "-prev").addEventListener("click", () => { if (st.pages.length > 1) { st.pages.pop(); load(); } });
  st.done = (next, shown) => {
    st.next = next;
    $(prefix + "-prev").disabled = st.pages.length <= 1;
    $(prefix + "-next").disabled = next === null;
    text(prefix + "-page", `page ${st.pages.length} · ${shown} shown`);
  };
  return st;
}

// ---- disks ----------------------------------------------------------------------------

const DISK_STATUS = { 1: "normal", 2: "broken", 3: "repairing", 4: "repaired", 5: "dropped" };
const diskPager = pager("disk", loadDisks);

async function loadDisks() {
  const sel = $("disk-idc");
  const idcs = lastData ? (lastData.d.stat.space_stat.disk_stat_infos || []).map((i) => i.idc) : [];
  if (sel.dataset.idcs !== idcs.join(",")) {
    const cur = sel.value;
    sel.replaceChildren(el("option", { value: "" }, "any"), ...idcs.map((i) => el("option", { value: i }, i)));
    sel.value = cur;
    sel.dataset.idcs = idcs.join(",");
  }
  const count = Number($("disk-count").value);
  const q = new URLSearchParams();
  for (const [k, id] of [["idc", "disk-idc"], ["rack", "disk-rack"], ["host", "disk-host"], ["status", "disk-status"]])
    if ($(id).value.trim()) q.set(k, $(id).value.trim());
  const marker = diskPager.pages[diskPager.pages.length - 1];
  if (marker) q.set("marker", marker);
  q.set("count", String(count));
  try {
    const r = await api("GET", "/disk/list?" + q.toString());
    const disks = (r && r.disks) || [];
    diskPager.done(disks.length === count && r.marker ? String(r.marker) : null, disks.length);
    fillTable("disks", disks.map(diskRow), 10, "no disk matches");
  } catch (e) {
    diskPager.done(null, 0);
    listFailed("disks", 10, "disks", "disk-msg", e);
  }
}

function diskRow(d) {
  const id = d.disk_id;
  const status = el("select", { class: "small", "data-id": String(id) },
    ...[1, 2, 3, 4].map((s) => el("option", { value: String(s), selected: s === d.status }, DISK_STATUS[s])));
  const set = actButton("set-status", "data-id", id, "set", () => diskAct(`Set disk ${id} ${DISK_STATUS[status.value]}`,
    `disk ${id} (${d.host} ${d.path}) goes from ${DISK_STATUS[d.status]} to ${DISK_STATUS[status.value]}; ` +
    "a status never goes back to normal.", "/disk/set", { disk_id: id, status: Number(status.value) }));
  const ro = actButton("readonly", "data-id", id, d.readonly ? "make writable" : "make readonly", () => diskAct(d.readonly ? `Make disk ${id} writable` : `Make disk ${id} readonly`,
    d.readonly ? `disk ${id} takes new chunks again.` : `disk ${id} takes no new chunks; its volumes' health is recomputed.`,
    "/disk/access", { disk_id: id, readonly: !d.readonly }));
  const drop = actButton("drop", "data-id", id, "drop", () => diskAct(`Drop disk ${id}`,
    `disk ${id} starts dropping: no new chunks, it leaves the space statistics, and the scheduler migrates its units away.`,
    "/disk/drop", { disk_id: id }));
  const cls = d.status === 1 ? "ok" : d.status === 2 ? "bad" : "warn";
  return el("tr", { "data-id": String(id) }, cell(String(id)), cell(d.idc), cell(d.rack), cell(d.host),
    cell(d.path), cell(el("span", { class: "tag " + cls }, DISK_STATUS[d.status] || String(d.status))),
    cell(d.readonly ? "yes" : "no"), cell(`${bytes(d.free || 0)} / ${bytes(d.size || 0)}`),
    cell(`${d.free_chunk_cnt} / ${d.max_chunk_cnt}`), el("td", { class: "actions" }, status, set, ro, drop));
}

async function diskAct(title, effect, path, body) {
  if (await act("disk-msg", title, effect, async () => { await api("POST", path, body); return `${title}: done`; }))
    loadDisks();
}

// ---- volumes --------------------------------------------------------------------------

const VOL_STATUS = { 1: "idle", 2: "active", 3: "lock", 4: "unlocking" };
const volPager = pager("vol", loadVolumes);

// One page: /volume/list from the page's marker; with a status filter it reads on through the
// markers until the page is full or the list ends, and the next page starts after the last shown.
async function loadVolumes() {
  const count = Number($("vol-count").value), want = Number($("vol-status").value || 0);
  let marker = Number(volPager.pages[volPager.pages.length - 1] || 0);
  try {
    const shown = [];
    let more = true;
    while (shown.length < count && more) {
      const batch = want ? 500 : count - shown.length;
      const r = await api("GET", `/volume/list?marker=${marker}&count=${batch}`);
      const vols = (r && r.volumes) || [];
      more = vols.length === batch;
      for (const v of vols) {
        marker = v.vid;
        if (want && v.status !== want) continue;
        shown.push(v);
        if (shown.length === count) { more = true; break; }
      }
    }
    volPager.done(more && shown.length ? String(shown[shown.length - 1].vid) : null, shown.length);
    fillTable("vols", shown.map(volRow), 7, "no volume matches");
  } catch (e) {
    volPager.done(null, 0);
    listFailed("vols", 7, "volumes", "vol-msg", e);
  }
}

function volRow(v) {
  const acts = [actButton("units", "data-vid", v.vid, "units", () => showVolume(v.vid))];
  if (v.status === 1) acts.push(actButton("lock", "data-vid", v.vid, "lock", () => volAct(v.vid, "lock")));
  if (v.status === 3) acts.push(actButton("unlock", "data-vid", v.vid, "unlock", () => volAct(v.vid, "unlock")));
  const cls = v.status === 1 ? "ok" : v.status === 2 ? "" : "warn";
  return el("tr", { "data-vid": String(v.vid), "data-status": VOL_STATUS[v.status] || String(v.status) },
    cell(String(v.vid)), cell(String(v.code_mode)),
    cell(el("span", { class: "tag " + cls }, VOL_STATUS[v.status] || String(v.status))),
    cell(String(v.health_score)), cell(`${bytes(v.free)} / ${bytes(v.total)}`),
    cell(String((v.units || []).length)), el("td", { class: "actions" }, ...acts));
}

async function volAct(vid, what) {
  const effect = what === "lock"
    ? `volume ${vid} is locked for migration: it leaves the allocation pool and the leader sets its chunks read-only.`
    : `volume ${vid} starts unlocking: the leader sets its chunks writable again, then it becomes idle.`;
  if (await act("vol-msg", `${what === "lock" ? "Lock" : "Unlock"} volume ${vid}`, effect, async () => {
    await api("POST", "/volume/" + what, { vid });
    const v = await api("GET", "/volume/get?vid=" + vid);
    return `volume ${vid} is ${VOL_STATUS[v.status] || v.status} now`;
  })) { loadVolumes(); showVolume(vid); }
}

async function showVolume(vid) {
  const box = $("vol-detail"), tb = $("vol-units").tBodies[0];
  box.hidden = false;
  try {
    const v = await api("GET", "/volume/get?vid=" + vid);
    text("vol-detail-title", `Volume ${vid} · code mode ${v.code_mode} · ${VOL_STATUS[v.status] || v.status}` +
      ` · health ${v.health_score}`);
    const ids = [...new Set(v.units.map((u) => u.disk_id))];
    const disks = new Map(await Promise.all(ids.map((id) =>
      api("GET", "/disk/info?disk_id=" + id).then((d) => [id, d], () => [id, null]))));
    tb.replaceChildren();
    v.units.forEach((u, i) => {
      const d = disks.get(u.disk_id);
      tb.append(el("tr", { "data-disk": String(u.disk_id) }, cell(String(i)), cell(String(u.vuid)),
        cell(String(u.disk_id)), cell(u.host), cell(d ? `${d.idc} / ${d.rack}` : "?"),
        cell(d ? DISK_STATUS[d.status] + (d.readonly ? ", readonly" : "") : "?")));
    });
    box.dataset.vid = String(vid);
  } catch (e) {
    text("vol-detail-title", `Volume ${vid}: ${e.message}`);
    tb.replaceChildren();
  }
}

// ---- services, KV, config ---------------------------------------------------------------

async function loadServices() {
  const name = $("svc-name").value.trim();
  try {
    const r = await api("GET", name ? "/service/get?name=" + encodeURIComponent(name) : "/service/list");
    const nodes = (r && r.nodes) || [];
    nodes.sort((a, b) => a.name.localeCompare(b.name) || a.host.localeCompare(b.host));
    fillTable("svcs", nodes.map((s) => el("tr", {}, cell(s.name), cell(s.host), cell(s.idc), cell(String(s.cluster_id)))),
      4, name ? `no live service named ${name}` : "no service registered");
    say("svc-msg", name ? "live nodes of " + name : "every registered node, expired ones too");
  } catch (e) {
    listFailed("svcs", 4, "services", "svc-msg", e);
  }
}

function kvValue(b64) {
  const raw = atob(b64 || "");
  const bytesArr = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  try {
    const s = new TextDecoder("utf-8", { fatal: true }).decode(bytesArr);
    if (!/[\u0000-\u0008\u000e-\u001f\u007f]/.test(s)) return ["text", s, bytesArr.length];
  } catch (e) { /* not UTF-8: hex */ }
  return ["hex", [...bytesArr].map((x) => x.toString(16).padStart(2, "0")).join(" "), bytesArr.length];
}

const kvPager = pager("kv", loadKV);
async function loadKV() {
  const count = Number($("kv-count").value), q = new URLSearchParams();
  q.set("prefix", $("kv-prefix").value);
  q.set("marker", kvPager.pages[kvPager.pages.length - 1]);
  q.set("count", String(count));
  try {
    const r = await api("GET", "/kv/list?" + q.toString());
    const kvs = (r && r.kvs) || [];
    kvPager.done(r && r.marker ? r.marker : null, kvs.length);
    fillTable("kvs", kvs.map((kv) => {
      const [as, v, n] = kvValue(kv.value);
      return el("tr", { "data-key": kv.key }, cell(kv.key), cell(el("span", { class: "tag" }, as)),
        el("td", { class: "value" }, v), cell(String(n)));
    }), 4, "no key");
  } catch (e) {
    kvPager.done(null, 0);
    listFailed("kvs", 4, "keys", "kv-msg", e);
  }
}

async function loadConfig() {
  const f = $("cfg-key").value.trim();
  try {
    const r = await api("GET", "/config/list");
    const keys = Object.keys((r && r.configs) || {}).filter((k) => k.includes(f)).sort();
    fillTable("cfgs", keys.map((k) => el("tr", { "data-key": k }, cell(k), el("td", { class: "value" }, r.configs[k]))),
      2, "no key");
    say("cfg-msg", `${keys.length} key(s)`);
  } catch (e) {
    listFailed("cfgs", 2, "config", "cfg-msg", e);
  }
}

// ---- history charts -------------------------------------------------------------------

const COLORS = ["#2f6fde", "#d64545", "#1f9d55", "#d68a00", "#8e44ad", "#16a085", "#7f8c8d", "#c0392b"];

// A line chart on a canvas: series = [{name, points: [[t_ms, y], ...]}], marks = [{t, label}].
function chart(title, unit, series, marks, fmt, empty) {
  const W = 640, H = 200, L = 62, R = 12, T = 26, B = 26;
  const c = el("canvas", { width: W, height: H });
  const g = c.getContext("2d");
  const pts = series.flatMap((s) => s.points);
  c.dataset.points = String(pts.length);
  c.dataset.title = title;
  g.fillStyle = "#fff";
  g.fillRect(0, 0, W, H);
  g.font = "12px system-ui, sans-serif";
  g.fillStyle = "#1d2430";
  g.fillText(`${title} (${unit})`, L, 16);
  if (!pts.length) {
    g.fillStyle = "#6b7686";
    g.fillText(empty || "no samples yet", L, H / 2);
    return c;
  }
  let t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]));
  if (t1 - t0 < 60000) t0 = t1 - 60000;
  const ymax = Math.max(...pts.map((p) => p[1])) * 1.1 || 1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R), y = (v) => H - B - (v / ymax) * (H - T - B);
  g.strokeStyle = "#e3e7ee";
  g.fillStyle = "#6b7686";
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    g.beginPath(); g.moveTo(L, y(v)); g.lineTo(W - R, y(v)); g.stroke();
    g.fillText(fmt(v), 4, y(v) + 4);
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const lbl = new Date(t).toISOString().slice(11, 19);
    g.fillText(lbl, Math.min(W - R - 50, x(t) - 24), H - 8);
  }
  g.setLineDash([4, 3]);
  g.strokeStyle = "#d68a00";
  marks.filter((m) => m.t >= t0 && m.t <= t1).forEach((m, i) => {
    g.beginPath(); g.moveTo(x(m.t), T); g.lineTo(x(m.t), H - B); g.stroke();
    g.fillStyle = "#8a5a00";
    const lw = g.measureText(m.label).width; // labels stagger down so close changes stay legible
    g.fillText(m.label, Math.min(x(m.t) + 3, W - R - lw), T + 10 + (i % 4) * 13);
  });
  g.setLineDash([]);
  let lx = L + 200;
  series.forEach((s, i) => {
    g.strokeStyle = g.fillStyle = COLORS[i % COLORS.length];
    g.lineWidth = 2;
    g.beginPath();
    s.points.forEach((p, k) => (k ? g.lineTo(x(p[0]), y(p[1])) : g.moveTo(x(p[0]), y(p[1]))));
    g.stroke();
    if (s.points.length === 1) g.fillRect(x(s.points[0][0]) - 2, y(s.points[0][1]) - 2, 4, 4);
    g.lineWidth = 1;
    g.fillRect(lx, 8, 10, 10);
    g.fillText(s.name, lx + 14, 17);
    lx += 20 + g.measureText(s.name).width;
  });
  return c;
}

async function loadHistory() {
  clearTimeout(histTimer);
  try {
    const h = await api("GET", "/dashboard/history");
    const S = h.samples;
    const line = (name, f) => ({ name, points: S.map((s) => [s.t, f(s)]).filter((p) => p[1] !== null) });
    const marks = h.leader_changes.map((e) => ({ t: e.t, label: `leader ${e.leader || "none"} · term ${e.term}` }));
    const ids = [...new Set(S.flatMap((s) => Object.keys(s.lag)))].sort((a, b) => a - b);
    const num = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
    const box = $("charts");
    box.replaceChildren(
      chart("requests per second", "/s", [line("writes", (s) => s.writes_per_s), line("reads", (s) => s.reads_per_s)], marks, num),
      chart("write latency p99", "ms", [line("p99", (s) => s.write_p99_ms)], marks, num),
      chart("commit index rate", "entries/s", [line("commit", (s) => s.commit_per_s)], marks, num),
      chart("replication lag", "entries", ids.map((id) => line("node " + id, (s) => (id in s.lag ? s.lag[id] : null))), marks, num,
        "known only while this node leads: open the leader's page for it"),
      chart("free space per IDC", "bytes", h.idcs.map((idc, i) => line(idc, (s) => (i < s.free_bytes.length ? s.free_bytes[i] : null))), marks, (v) => bytes(v)));
    const first = S.length ? new Date(S[0].t).toISOString().slice(11, 19) : "–";
    text("hist-note", `node ${h.node}: ${S.length} of ${h.capacity} samples, one every ${h.interval_s} s since ${first} UTC ` +
      `(kept in the node, ${bytes(h.bytes)}). Replication lag is known while this node leads. ` +
      "Dashed lines: leader changes this node saw.");
    box.dataset.samples = String(S.length);
  } catch (e) {
    text("hist-note", "loading the history failed: " + e.message);
  } finally {
    if (!$("view-history-charts").hidden) histTimer = setTimeout(loadHistory, 5000);
  }
}

$("auth").addEventListener("submit", (e) => { e.preventDefault(); saveSecret(); });
$("member-add").addEventListener("submit", addMember);
$("svc-filter").addEventListener("submit", (e) => { e.preventDefault(); loadServices(); });
$("cfg-filter").addEventListener("submit", (e) => { e.preventDefault(); loadConfig(); });
window.addEventListener("hashchange", showView);
refresh();
showView();
