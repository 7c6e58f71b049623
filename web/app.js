// The clustermgr dashboard: polls /dashboard/data every two seconds and renders it. Task switch
// toggles write through POST /config/set (a follower forwards it to the leader).
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
      el("td", {}, repl), el("td", {}, m.format_version ? String(m.format_version) : "?")));
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
    throw new Error("this cluster requires a token: enter its secret above");
  }
  return r;
}

function saveSecret() {
  sessionStorage.setItem("clustermgr-secret", $("auth-secret").value);
  $("auth").hidden = true;
  clearTimeout(timer);
  $("auth").addEventListener("submit", (e) => { e.preventDefault(); saveSecret(); });
refresh();
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
    document.body.dataset.loaded = "1";
  } catch (e) {
    const h = $("health");
    h.className = "pill bad";
    h.textContent = "node unreachable: " + e.message;
  } finally {
    timer = setTimeout(refresh, REFRESH_MS);
  }
}

$("auth").addEventListener("submit", (e) => { e.preventDefault(); saveSecret(); });
refresh();
