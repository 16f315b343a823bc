// Load for node-oidc-provider's /token, one code per request, after ~1,000 warm-up requests
// (whole rounds over the connections: 1,024 at 64).
// Closed loop: CONNS connections, each sends when its last answer is in. Open loop (RATE set):
// requests are due on a fixed timetable, up to CONNS in flight, and latency counts from each
// request's due time (no coordinated omission), as `sso-loadtest --rate` does.
import http from 'node:http';
import { readFileSync } from 'node:fs';

const codes = readFileSync(process.env.CODES_FILE, 'utf8').split('\n');
const conns = Number(process.env.CONNS || 64);
const secs = Number(process.env.SECS || 10);
const rate = Number(process.env.RATE || 0);
const warmup = 1000;
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
let next = 0;
const lat = [];
let ok = 0, bad = 0, measuring = false, started = 0;
const badKinds = {};
const fail = (kind) => { if (measuring) { bad++; badKinds[kind] = (badKinds[kind] || 0) + 1; } };

function exchange(due) {
  if (next >= codes.length) throw new Error('out of codes: raise --codes');
  const body = `grant_type=authorization_code&code=${codes[next++]}`
    + '&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&client_id=bench&client_secret=bench-secret-0123456789';
  return new Promise((resolve) => {
    const req = http.request({
      agent, host: '127.0.0.1', port: Number(process.env.PORT), path: '/token', method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const good = res.statusCode === 200
          && JSON.parse(Buffer.concat(chunks)).access_token?.split('.').length === 3;
        if (!good) fail(`status ${res.statusCode}`);
        else if (measuring) { ok++; lat.push(performance.now() - due); }
        resolve();
      });
    });
    req.on('error', (e) => { fail(e.code || e.message); resolve(); });
    req.end(body);
  });
}

async function closedLoop(until) {
  while (performance.now() < until) await exchange(performance.now());
}

const warmupRounds = Math.ceil(warmup / conns);
for (let i = 0; i < warmupRounds; i++) await Promise.all(Array.from({ length: conns }, () => exchange(0)));
measuring = true;
started = performance.now();
const until = started + secs * 1000;
if (rate > 0) {
  const inflight = new Set();
  for (let i = 0; ; ) {
    const due = started + (i * 1000) / rate;
    if (due >= until) break;
    const wait = due - performance.now();
    if (wait > 0) {
      // Never early; late by up to a timer tick (~1 ms), which counts in the latency.
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    while (inflight.size >= conns) await Promise.race(inflight);
    const p = exchange(due).then(() => inflight.delete(p));
    inflight.add(p);
    i++;
  }
  await Promise.all(inflight);
} else {
  await Promise.all(Array.from({ length: conns }, () => closedLoop(until)));
}
const elapsed = (performance.now() - started) / 1000;
lat.sort((a, b) => a - b);
const q = (p) => +(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN).toFixed(2);
console.log(JSON.stringify({
  mode: rate > 0 ? `open ${rate}/s` : `closed ${conns}`, warmup: warmupRounds * conns, ok, bad,
  bad_kinds: badKinds,
  rate_per_s: +(ok / elapsed).toFixed(1), p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99),
  p999_ms: q(0.999), max_ms: +(lat.at(-1) ?? NaN).toFixed(2),
}));
agent.destroy();
