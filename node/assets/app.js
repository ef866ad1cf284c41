// The Accord node's status and verification page. Plain ES2020, no build step: it reads the
// node's public JSON API and checks statements with WebCrypto (Ed25519 and SHA-256), following
// docs/observers.md, or where the browser lacks it with the vendored TweetNaCl and js-sha256
// (node/assets/vendor/README.md). Everything from the network is shown with textContent,
// never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let bundle = null; // the node's trust bundle, once it has a group key
let bundleText = ""; // what was last put into the bundle textarea

// ---------------------------------------------------------------- small helpers

function setText(id, text) {
  $(id).textContent = text;
}

function short(hex) {
  return typeof hex === "string" && hex.length > 16 ? `${hex.slice(0, 12)}…` : String(hex);
}

async function fetchJson(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => null);
  return { status: r.status, body };
}

function hexToBytes(hex, what, length) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error(`${what} is not hex`);
  }
  if (length !== undefined && hex.length !== 2 * length) {
    throw new Error(`${what} is not ${length} bytes`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// WebCrypto exists only in secure contexts (https, localhost); elsewhere the vendored
// js-sha256 hashes.
async function hashSha256(...parts) {
  const data = concat(...parts);
  if (globalThis.crypto && crypto.subtle) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  }
  if (typeof globalThis.sha256 !== "function") throw new Error("no SHA-256: WebCrypto is unavailable and js-sha256 did not load");
  return Uint8Array.from(globalThis.sha256.array(data));
}

// ---------------------------------------------------------------- status, verdicts, log

function showStatus(s) {
  setText("network", s.network);
  setText("whoami", `Member ${s.member} (index ${s.index}), peer ${s.peer_id}; network id ${s.network_id}`);
  const ready = $("ready");
  ready.textContent = s.ready ? "Ready" : "Not ready";
  ready.className = `badge ${s.ready ? "ready" : "not-ready"}`;
  setText("ready-reason", s.ready ? "" : s.reason || "");
  setText("reachable", `${s.reachable} of ${s.members} (threshold t = ${s.threshold}), this node included`);
  setText("connected", s.connected.length ? s.connected.join(", ") : "none");
  setText("current-period", s.current_period === null ? "before genesis" : String(s.current_period));
  setText("next-close", String(s.next_close));
  setText("pending", String(s.pending_units));
  setText("dkg", s.group_key ? "done" : s.dkg_phase ? `in progress (${s.dkg_phase})` : "not run yet");
  setText("group-key", s.group_key || "none yet");
}

// The periods worth asking for statements: those of the recent co-signed units, and the two
// last periods this member closed (the recent list is kept in memory only).
function candidatePeriods(s) {
  const periods = new Set(s.recent.map((d) => d.period));
  for (const back of [1, 2]) if (s.next_close >= back) periods.add(s.next_close - back);
  return Array.from(periods).sort((a, b) => b - a).slice(0, 8);
}

async function showVerdicts(s) {
  const latest = new Map(); // lab -> statement
  for (const period of candidatePeriods(s)) {
    const { status, body } = await fetchJson(`/v1/statements?period=${period}`);
    if (status !== 200 || !Array.isArray(body)) continue;
    for (const st of body) {
      const seen = latest.get(st.lab);
      if (!seen || seen.period < st.period) latest.set(st.lab, st);
    }
  }
  const rows = $("verdicts");
  rows.replaceChildren();
  if (latest.size === 0) {
    const tr = rows.insertRow();
    const td = tr.insertCell();
    td.colSpan = 5;
    td.textContent = "No co-signed statement yet.";
    return;
  }
  for (const lab of Array.from(latest.keys()).sort()) {
    const st = latest.get(lab);
    const tr = rows.insertRow();
    tr.dataset.lab = lab;
    tr.insertCell().textContent = lab;
    tr.insertCell().textContent = String(st.period);
    const verdict = tr.insertCell();
    verdict.textContent = st.verdict_kind;
    verdict.className = `verdict-${st.verdict_kind}`;
    const evidence = tr.insertCell();
    evidence.className = "hex";
    evidence.textContent = st.evidence.length ? st.evidence.join("\n") : "(none)";
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Verify";
    button.addEventListener("click", () => {
      $("statement-input").value = JSON.stringify(st, null, 2);
      verifyPasted();
    });
    tr.insertCell().append(button);
  }
}

function parseCheckpoint(text) {
  const [body, sigs = ""] = text.split("\n\n");
  const [origin, size, root] = body.split("\n");
  const signers = sigs
    .split("\n")
    .filter((l) => l.startsWith("\u2014 "))
    .map((l) => l.slice(2).split(" ")[0]);
  return { origin, size, root, signers };
}

async function showLog() {
  const r = await fetch("/v1/log/checkpoint");
  if (r.status !== 200) return;
  const text = await r.text();
  const cp = parseCheckpoint(text);
  setText("log-checkpoint", text);
  setText("log-origin", cp.origin);
  setText("log-size", cp.size);
  setText("log-root", cp.root);
  const witnessNames = new Map((bundle ? bundle.logs : []).map((l) => [l.witness_name, l.name]));
  const cosigners = cp.signers.filter((n) => witnessNames.has(n)).map((n) => witnessNames.get(n));
  setText("log-cosigners", cosigners.length ? cosigners.join(", ") : "no witness yet");
  const w = await fetchJson("/v1/witness");
  if (w.status === 200 && w.body) {
    const names = new Map((bundle ? bundle.logs : []).map((l) => [l.member, l.name]));
    const describe = (list) => list.map((x) => names.get(x.member) || `member ${x.member}`).join(", ");
    setText("witnessed", w.body.witnessed.length ? describe(w.body.witnessed) : "none yet");
    setText("forks", w.body.forks.length ? `FORK by ${describe(w.body.forks)}` : "none");
  }
}

async function refresh() {
  try {
    const { status, body } = await fetchJson("/v1/status");
    if (status !== 200 || !body) throw new Error(`GET /v1/status answered ${status}`);
    showStatus(body);
    if (!bundle && body.group_key) {
      const b = await fetchJson("/v1/trust-bundle");
      if (b.status === 200 && b.body) {
        bundle = b.body;
        // Fill the textarea unless the user put their own bundle there.
        if ($("bundle-input").value === bundleText) {
          bundleText = JSON.stringify(bundle, null, 2);
          $("bundle-input").value = bundleText;
        }
      }
    }
    await showVerdicts(body);
    await showLog();
    $("refresh-error").hidden = true;
  } catch (e) {
    $("refresh-error").hidden = false;
    setText("refresh-error", `Cannot read the node: ${e.message}`);
  }
}

// ---------------------------------------------------------------- statement verification

// Reads the canonical codec: bincode 2, little endian, fixed-width integers (lengths and u64 as
// 8 bytes, enum variants as 4), byte arrays as raw bytes.
class Reader {
  constructor(bytes, at) {
    this.bytes = bytes;
    this.at = at;
  }
  take(n) {
    if (n > this.bytes.length - this.at) throw new Error("the signed statement bytes are truncated");
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  uint(width) {
    let v = 0n;
    this.take(width).forEach((b, i) => (v |= BigInt(b) << BigInt(8 * i)));
    return v;
  }
  u64() {
    return this.uint(8);
  }
  variant() {
    return Number(this.uint(4));
  }
  length() {
    const n = this.u64();
    if (n > BigInt(this.bytes.length)) throw new Error("the signed statement bytes are truncated");
    return Number(n);
  }
}

const STATEMENT_TAG = new TextEncoder().encode("accord/statement\0");
const VERDICT_KINDS = ["compliant", "violation", "no-attestation"];

// Decodes the fields an observer reads from a statement's signing bytes:
// tag ‖ 0x00 ‖ version ‖ network_id ‖ encode(network_id, policy_hash, slot, evidence, verdict).
function decodeStatement(leaf) {
  if (!equalBytes(leaf.subarray(0, STATEMENT_TAG.length), STATEMENT_TAG)) {
    throw new Error("the signed bytes are not an Accord statement (wrong domain tag)");
  }
  const r = new Reader(leaf, STATEMENT_TAG.length + 1);
  const prefixNetwork = bytesToHex(r.take(32));
  const networkId = bytesToHex(r.take(32));
  const policyHash = bytesToHex(r.take(32));
  const labBytes = r.take(r.length());
  const lab = new TextDecoder("utf-8", { fatal: true }).decode(labBytes);
  const period = r.u64();
  const count = r.length();
  const evidence = [];
  for (let i = 0; i < count; i++) evidence.push(bytesToHex(r.take(32)));
  const kind = VERDICT_KINDS[r.variant()];
  if (!kind) throw new Error("the signed statement has an unknown verdict");
  return { prefixNetwork, networkId, policyHash, lab, period, evidence, kind };
}

// RFC 9162 2.1.3.2: the root that `proof` gives leaf `index` of a tree of `size` leaves.
async function rootFromInclusionProof(leaf, index, size, proof) {
  let r = await hashSha256(new Uint8Array([0]), leaf);
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn > sn) throw new Error("the inclusion proof's index is outside the checkpoint's tree");
  for (const hex of proof) {
    const p = hexToBytes(hex, "an inclusion proof hash", 32);
    if (sn === 0n) throw new Error("the inclusion proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await hashSha256(new Uint8Array([1]), p, r);
      while (fn !== 0n && (fn & 1n) === 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await hashSha256(new Uint8Array([1]), r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the inclusion proof is too short");
  return r;
}

function base64ToBytes(text) {
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

// Which Ed25519 verifier checked the last signature (shown with the result).
let verifierUsed = "";

// The group order L, little-endian: a signature's scalar S must be below it (RFC 8032 §5.1.7).
const GROUP_ORDER = (1n << 252n) + 27742317777372353535851937790883648493n;

function scalarBelowOrder(signature) {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]);
  return s < GROUP_ORDER;
}

// Ed25519 with WebCrypto where the browser has it, otherwise TweetNaCl. Both are the
// cofactorless check with S < L and a canonical R, as the Rust verifier.
async function ed25519Verify(keyHex, signatureHex, message) {
  const key = hexToBytes(keyHex, "the group key", 32);
  const signature = hexToBytes(signatureHex, "the signature", 64);
  if (globalThis.crypto && crypto.subtle) {
    let imported = null;
    try {
      imported = await crypto.subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      // No Ed25519 in this browser's WebCrypto: the fallback below.
    }
    if (imported) {
      verifierUsed = "WebCrypto";
      return crypto.subtle.verify({ name: "Ed25519" }, imported, signature, message);
    }
  }
  if (!globalThis.nacl || !nacl.sign || !nacl.sign.detached) {
    throw new Error("this browser has no WebCrypto Ed25519 and TweetNaCl did not load; use accord verify");
  }
  verifierUsed = "TweetNaCl";
  return scalarBelowOrder(signature) && nacl.sign.detached.verify(message, signature, key);
}

// Every check of docs/observers.md that needs no roster: throws an Error naming the first
// failure, or returns a one-line summary.
async function verifyStatement(st, trust) {
  if (!st || typeof st !== "object") throw new Error("the statement is not a JSON object");
  if (!trust || typeof trust.group_key !== "string") throw new Error("no trust bundle (the node has no group key yet?)");
  for (const field of ["message", "signature", "group_key", "network_id", "policy_hash", "lab", "verdict_kind"]) {
    if (typeof st[field] !== "string") throw new Error(`the statement has no ${field} field`);
  }
  if (st.group_key.toLowerCase() !== trust.group_key) {
    throw new Error(`the statement's group key ${st.group_key} is not the trust bundle's ${trust.group_key}`);
  }
  if (st.network_id.toLowerCase() !== trust.network_id) {
    throw new Error(`statement is for network ${st.network_id}, the trust bundle is for ${trust.network_id}`);
  }
  if (st.policy_hash.toLowerCase() !== trust.policy_hash) {
    throw new Error(`statement policy hash ${st.policy_hash} differs from the trust bundle's ${trust.policy_hash}`);
  }
  const message = hexToBytes(st.message, "the message");
  if (!(await ed25519Verify(trust.group_key, st.signature, message))) {
    throw new Error("bad signature: the group did not sign this message");
  }
  let leaf = message;
  if (st.batch) {
    if (typeof st.statement_bytes !== "string") throw new Error("a batch statement without statement_bytes");
    leaf = hexToBytes(st.statement_bytes, "statement_bytes");
    const checkpoint = new TextDecoder().decode(message);
    if (checkpoint !== st.batch.checkpoint) throw new Error("the batch checkpoint is not the signed message");
    const [origin, size, root] = checkpoint.split("\n");
    if (origin !== `accord/${trust.network_id}/period/${st.period}`) {
      throw new Error("bad checkpoint: origin names another network or period");
    }
    const computed = await rootFromInclusionProof(leaf, st.batch.index, size, st.batch.proof || []);
    if (!equalBytes(computed, base64ToBytes(root))) {
      throw new Error("the inclusion proof does not match the signed checkpoint");
    }
  }
  const signed = decodeStatement(leaf);
  if (signed.prefixNetwork !== trust.network_id || signed.networkId !== trust.network_id) {
    throw new Error("the signed statement is for another network");
  }
  const mismatch = (field) => {
    throw new Error(`the ${field} field does not match the signed statement`);
  };
  if (signed.policyHash !== trust.policy_hash) mismatch("policy_hash");
  if (signed.lab !== st.lab) mismatch("lab");
  if (signed.period !== BigInt(st.period)) mismatch("period");
  if (!Array.isArray(st.evidence) || signed.evidence.join() !== st.evidence.map((e) => String(e).toLowerCase()).join()) {
    mismatch("evidence");
  }
  if (signed.kind !== st.verdict_kind) mismatch("verdict_kind");
  const verdictKey = st.verdict && typeof st.verdict === "object" ? Object.keys(st.verdict)[0] : st.verdict;
  const verdictKinds = { Compliant: "compliant", Violation: "violation", NoAttestation: "no-attestation" };
  if (verdictKinds[verdictKey] !== signed.kind) mismatch("verdict");
  const n = signed.evidence.length;
  return `Valid: period ${signed.period} lab ${signed.lab}: ${signed.kind} (${n} evidence item${n === 1 ? "" : "s"}), co-signed by the group key of the trust bundle (checked with ${verifierUsed}).`;
}

function showResult(ok, text) {
  const out = $("verify-result");
  out.className = `result ${ok ? "ok" : "bad"}`;
  out.textContent = text;
}

async function verifyPasted() {
  let st;
  let trust;
  try {
    st = JSON.parse($("statement-input").value);
  } catch (e) {
    showResult(false, `Not valid JSON: ${e.message}`);
    return;
  }
  try {
    trust = JSON.parse($("bundle-input").value);
  } catch (e) {
    showResult(false, `The trust bundle is not valid JSON: ${e.message}`);
    return;
  }
  try {
    showResult(true, await verifyStatement(st, trust));
  } catch (e) {
    showResult(false, `Invalid: ${e.message}`);
  }
}

$("verify-button").addEventListener("click", verifyPasted);
$("statement-file").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  if (file.size > 1 << 20) {
    showResult(false, "That file is over 1 MiB: not a statement");
    return;
  }
  $("statement-input").value = await file.text();
  verifyPasted();
});

refresh();
setInterval(refresh, REFRESH_MS);
