#!/usr/bin/env node
// A foreign actor process for `relay server --nats`, written from docs/PROTOCOL.md (sections 2, 5,
// 6 and 10) with npm's `nats` (NATS + JetStream + KV) and `protobufjs` (proto/*.proto loaded at run
// time).
//
// usage: node relay_nats_client.js NATS_URL PROTO_DIR [--run R] [--seconds S]
//            [--episodes-per-batch K] [--seed N] [--ledger FILE]
//
// It says hello (Handshake request on relay.R.control), reads the newest model from the KV bucket
// RELAY_R_MODEL (key "latest"), runs its own CartPole in JavaScript with the policy and the critic
// evaluated from the ONNX graphs (Gemm + activations), publishes trajectory batches to the stream
// RELAY_R_TRAJ (subject relay.R.traj, headers Nats-Msg-Id and Relay-Batch-Seq) and counts
// JetStream's acknowledgements, installs every new model broadcast on relay.R.model (and re-reads
// the KV entry once a second, as a missed broadcast is never resent), and stops when the server
// publishes its status (Shutdown "training finished: ...") or after S seconds: it waits for the
// outstanding acks, says goodbye (Shutdown request with its client id) and exits.
// With --ledger it appends "<producer hex>:<seq>,<count>" for every acknowledged batch (the same
// format as `relay actors --ledger`). Envelopes it sends are plaintext and uncompressed; it reads
// uncompressed and LZ4-compressed ones. Last line: "producer <hex>; batches sent N, acked A;
// trajectories T, acked TA; episodes E; versions applied V".
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { connect, headers } = require("nats");
const protobuf = require("protobufjs");

const Long = protobuf.util.Long;

// ---- arguments ------------------------------------------------------------------------------

function parseArgs(argv) {
  const a = { run: "default", seconds: 60, episodesPerBatch: 4, seed: 1, ledger: null };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === "--run") a.run = val();
    else if (k === "--seconds") a.seconds = Number(val());
    else if (k === "--episodes-per-batch") a.episodesPerBatch = Number(val());
    else if (k === "--seed") a.seed = Number(val());
    else if (k === "--ledger") a.ledger = val();
    else if (k.startsWith("--")) throw new Error(`unknown option ${k}`);
    else pos.push(k);
  }
  if (pos.length !== 2) throw new Error("usage: relay_nats_client.js NATS_URL PROTO_DIR [options]");
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(a.run)) throw new Error(`--run ${a.run}: 1..63 of [A-Za-z0-9_-]`);
  if (!(a.episodesPerBatch >= 1)) throw new Error("--episodes-per-batch must be >= 1");
  [a.url, a.protoDir] = pos;
  return a;
}

// ---- envelopes (PROTOCOL.md sections 2 and 6) ------------------------------------------------

const CRC_TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  CRC_TABLE[n] = c >>> 0;
}

// crc32c over the concatenation of the given byte arrays (Castagnoli, reflected).
function crc32c(...parts) {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function varint(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

// LZ4 raw block: sequences of a token, literals, a 2-byte offset and a match length.
function lz4BlockDecompress(src, size) {
  const out = Buffer.alloc(size);
  let i = 0;
  let o = 0;
  const more = (n) => {
    let b;
    do {
      if (i >= src.length) throw new Error("lz4: truncated length");
      b = src[i++];
      n += b;
    } while (b === 255);
    return n;
  };
  while (i < src.length) {
    const token = src[i++];
    let lit = token >> 4;
    if (lit === 15) lit = more(lit);
    if (i + lit > src.length || o + lit > size) throw new Error("lz4: literals out of bounds");
    src.copy ? src.copy(out, o, i, i + lit) : out.set(src.subarray(i, i + lit), o);
    i += lit;
    o += lit;
    if (i >= src.length) break; // the last sequence has literals only
    if (i + 2 > src.length) throw new Error("lz4: truncated offset");
    const off = src[i] | (src[i + 1] << 8);
    i += 2;
    let ml = token & 15;
    if (ml === 15) ml = more(ml);
    ml += 4;
    if (off === 0 || off > o || o + ml > size) throw new Error("lz4: bad match");
    for (let k = 0; k < ml; k++, o++) out[o] = out[o - off]; // may overlap: byte by byte
  }
  if (o !== size) throw new Error(`lz4: ${o} bytes, expected ${size}`);
  return out;
}

// seal wraps a relay.v1.Message (a plain object with one body field) in a plaintext, uncompressed
// envelope: header (20 bytes, CRC-32C of bytes [0,16) + payload) | protobuf bytes.
function seal(pb, fields) {
  const body = Object.keys(fields)[0];
  const kind = pb.Message.fields[body].id; // the envelope's kind byte = the oneof field number
  const data = Buffer.from(pb.Message.encode(pb.Message.fromObject(fields)).finish());
  const head = Buffer.alloc(20);
  head.write("RLYE", 0, "ascii");
  head[4] = 1; // version
  head[5] = 0; // flags: not encrypted
  head[6] = 0; // compression: none
  head[7] = kind;
  head.writeUInt32LE(data.length, 8); // stored
  head.writeUInt32LE(data.length, 12); // original
  head.writeUInt32LE(crc32c(head.subarray(0, 16), data), 16);
  return Buffer.concat([head, data]);
}

// open checks an envelope (magic, version, flags, sizes, CRC-32C), decompresses it and returns
// the decoded relay.v1.Message.
function open(pb, env) {
  env = Buffer.from(env.buffer, env.byteOffset, env.length);
  if (env.length < 20) throw new Error("envelope shorter than its 20-byte header");
  if (env.toString("ascii", 0, 4) !== "RLYE" || env[4] !== 1) throw new Error("not a relay.v1 envelope");
  const flags = env[5];
  const comp = env[6];
  const kind = env[7];
  const stored = env.readUInt32LE(8);
  const original = env.readUInt32LE(12);
  if (flags & 1) throw new Error("encrypted envelope: this client has no key (RELAY_KEY) support");
  if (flags !== 0) throw new Error(`envelope flags ${flags}`);
  if (20 + stored !== env.length) throw new Error(`envelope of ${env.length} bytes declares ${stored} stored`);
  if (env.readUInt32LE(16) !== crc32c(env.subarray(0, 16), env.subarray(20))) throw new Error("envelope checksum mismatch");
  let payload = env.subarray(20);
  if (comp === 1) payload = lz4BlockDecompress(payload, original);
  else if (comp !== 0) throw new Error(`envelope compression ${comp} not supported here`);
  const m = pb.Message.decode(payload);
  if (!m[m.body] || pb.Message.fields[m.body].id !== kind) throw new Error("envelope kind does not match its body");
  return m;
}

const num = (v) => (Long.isLong(v) ? v.toNumber() : Number(v));
const nowNs = () => Long.fromString((BigInt(Date.now()) * 1000000n + process.hrtime.bigint() % 1000000n).toString());

// ---- ONNX MLP evaluation (Gemm with transB, Relu/Tanh/Sigmoid/Softmax/Identity) --------------

class Mlp {
  constructor(onnx, bytes) {
    const m = onnx.ModelProto.decode(bytes);
    const g = m.graph;
    this.init = new Map();
    for (const t of g.initializer) {
      let a;
      if (t.raw_data && t.raw_data.length) {
        const b = Uint8Array.from(t.raw_data); // a copy: aligned for Float32Array
        a = new Float32Array(b.buffer, 0, b.length / 4);
      } else {
        a = Float32Array.from(t.float_data);
      }
      this.init.set(t.name, { dims: t.dims.map(num), data: a });
    }
    this.nodes = g.node;
    this.input = g.input[0].name;
    this.output = g.output[0].name;
    this.softmaxOut = this.nodes.length > 0 && this.nodes[this.nodes.length - 1].op_type === "Softmax";
  }

  // run evaluates the graph on one observation (batch 1) and returns the output vector.
  run(x) {
    const v = new Map();
    v.set(this.input, Float64Array.from(x));
    const get = (name) => {
      if (v.has(name)) return v.get(name);
      const t = this.init.get(name);
      if (!t) throw new Error(`ONNX value ${name} missing`);
      return t;
    };
    for (const n of this.nodes) {
      const a = get(n.input[0]);
      let y;
      if (n.op_type === "Gemm") {
        const transB = n.attribute.some((at) => at.name === "transB" && num(at.i) === 1);
        const w = get(n.input[1]);
        const [r, c] = w.dims;
        const out = transB ? r : c;
        const inn = transB ? c : r;
        if (a.length !== inn) throw new Error(`Gemm ${n.name}: input ${a.length}, weights want ${inn}`);
        y = new Float64Array(out);
        for (let j = 0; j < out; j++) {
          let s = 0;
          for (let k = 0; k < inn; k++) s += a[k] * (transB ? w.data[j * c + k] : w.data[k * c + j]);
          y[j] = s;
        }
        if (n.input.length > 2 && n.input[2]) {
          const b = get(n.input[2]).data;
          for (let j = 0; j < out; j++) y[j] += b.length === 1 ? b[0] : b[j];
        }
      } else if (n.op_type === "Relu") {
        y = a.map((e) => Math.max(e, 0));
      } else if (n.op_type === "Tanh") {
        y = a.map(Math.tanh);
      } else if (n.op_type === "Sigmoid") {
        y = a.map((e) => 1 / (1 + Math.exp(-e)));
      } else if (n.op_type === "Softmax") {
        y = softmax(a);
      } else if (n.op_type === "Identity") {
        y = a;
      } else {
        throw new Error(`ONNX op ${n.op_type} not supported by this client`);
      }
      v.set(n.output[0], y);
    }
    return get(this.output);
  }
}

function softmax(a) {
  let mx = -Infinity;
  for (const e of a) mx = Math.max(mx, e);
  const y = a.map((e) => Math.exp(e - mx));
  let s = 0;
  for (const e of y) s += e;
  return y.map((e) => e / s);
}

// ---- CartPole-v1 (Gymnasium's dynamics) and a seeded generator --------------------------------

function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class CartPole {
  constructor(rand) {
    this.rand = rand;
  }

  reset() {
    this.s = [0, 0, 0, 0].map(() => this.rand() * 0.1 - 0.05);
    this.t = 0;
    return Float32Array.from(this.s);
  }

  step(a) {
    let [x, xd, th, thd] = this.s;
    const force = a === 1 ? 10.0 : -10.0;
    const ct = Math.cos(th);
    const st = Math.sin(th);
    const temp = (force + 0.05 * thd * thd * st) / 1.1;
    const thacc = (9.8 * st - ct * temp) / (0.5 * (4.0 / 3.0 - (0.1 * ct * ct) / 1.1));
    const xacc = temp - (0.05 * thacc * ct) / 1.1;
    x += 0.02 * xd;
    xd += 0.02 * xacc;
    th += 0.02 * thd;
    thd += 0.02 * thacc;
    this.s = [x, xd, th, thd];
    this.t += 1;
    const term = Math.abs(x) > 2.4 || Math.abs(th) > (12 * 2 * Math.PI) / 360;
    const trunc = this.t >= 500 && !term;
    return { obs: Float32Array.from(this.s), reward: 1.0, term, trunc };
  }
}

// ---- trajectories and batches (PROTOCOL.md section 10, docs/ZEROMQ.md "Foreign clients") -----

// makeTraj builds one Trajectory: obs f32 [4], act i32 [1], aux logp, value, bootstrap, cut.
function makeTraj(producer, episode, version, rows, boot) {
  const n = rows.length;
  const obs = Buffer.alloc(n * 16);
  const act = Buffer.alloc(n * 4);
  const aux = [];
  rows.forEach((r, i) => {
    for (let k = 0; k < 4; k++) obs.writeFloatLE(r.obs[k], i * 16 + k * 4);
    act.writeInt32LE(r.act, i * 4);
    aux.push(r.logp, r.value, i === n - 1 ? boot : 0, 0); // cut = 0: whole episodes only
  });
  return {
    actor_id: producer,
    env_id: -1,
    env_label: "node-cartpole",
    episode,
    policy_version: version,
    start_ns: rows[0].ts,
    end_ns: rows[n - 1].ts,
    max_len: 0,
    len: n,
    spec: {
      obs: { dtype: 1, shape: [4] }, // DTYPE_F32
      act: { dtype: 3, shape: [1] }, // DTYPE_I32
      aux_names: ["logp", "value", "bootstrap", "cut"],
    },
    obs,
    act,
    reward: rows.map((r) => r.reward),
    terminated: Buffer.from(rows.map((r) => (r.term ? 1 : 0))),
    truncated: Buffer.from(rows.map((r) => (r.trunc ? 1 : 0))),
    aux,
    timestamps_ns: rows.map((r) => r.ts),
  };
}

// batchBytes: "RLYB", version 1, 3 zero bytes, producer (16), seq u64, count u32, then one
// varint-framed envelope of Message{trajectory} per trajectory.
function batchBytes(pb, producer, seq, trajs) {
  const head = Buffer.alloc(36);
  head.write("RLYB", 0, "ascii");
  head[4] = 1;
  producer.copy(head, 8);
  head.writeBigUInt64LE(BigInt(seq), 24);
  head.writeUInt32LE(trajs.length, 32);
  const parts = [head];
  for (const t of trajs) {
    const env = seal(pb, { trajectory: t });
    parts.push(varint(env.length), env);
  }
  return Buffer.concat(parts);
}

// ---- the actor process -----------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(args.protoDir, path.basename(target));
  await root.load(["relay.proto", "onnx_subset.proto"], { keepCase: true });
  const pb = {
    Message: root.lookupType("relay.v1.Message"),
  };
  const onnx = { ModelProto: root.lookupType("onnx.ModelProto") };

  const R = args.run;
  const subjTraj = `relay.${R}.traj`;
  const subjModel = `relay.${R}.model`;
  const subjCtl = `relay.${R}.control`;
  const bucket = `RELAY_${R}_MODEL`;
  const clientId = `node-client-${process.pid}`;
  const producer = crypto.randomBytes(16);
  producer[6] = (producer[6] & 0x0f) | 0x40; // a version-4 UUID
  producer[8] = (producer[8] & 0x3f) | 0x80;
  const producerHex = producer.toString("hex");

  const nc = await connect({ servers: args.url, name: clientId, maxReconnectAttempts: -1 });
  const js = nc.jetstream();
  const deadline = Date.now() + args.seconds * 1000;

  // control: request/reply on relay.R.control (the server may not serve it yet: retry)
  async function control(fields) {
    for (;;) {
      try {
        const rep = await nc.request(subjCtl, seal(pb, fields), { timeout: 2000 });
        return open(pb, rep.data);
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`no control reply on ${subjCtl}: ${e.message}`);
        await sleep(200);
      }
    }
  }
  const hello = await control({ handshake: { client_id: clientId, requested_model_version: -1 } });
  console.log(`hello answered: server at version ${num(hello.model_version_reply.version)}`);

  // models: the KV entry "latest" is the source of truth; relay.R.model broadcasts for latency
  let model = null;
  let version = -1;
  let createdNs = null;
  let versionsApplied = 0;
  let finished = null; // the server's status reason once it published one
  let kv = null;
  function install(data) {
    const m = open(pb, data);
    if (m.shutdown) {
      finished = m.shutdown.reason;
      return;
    }
    if (!m.model_update) throw new Error(`model message holds ${m.body}`);
    const b = m.model_update.bundle;
    const v = num(b.version);
    const c = num(b.created_ns);
    if (model && v === version && c <= createdNs) return;
    if (!b.obs_space || b.obs_space.dim !== 4 || !b.act_space || !b.act_space.discrete || b.act_space.n !== 2)
      throw new Error(`model ${v} is not for CartPole (obs dim 4, 2 discrete actions)`);
    model = { pi: new Mlp(onnx, b.onnx), vf: b.value_onnx.length ? new Mlp(onnx, b.value_onnx) : null };
    version = v;
    createdNs = c;
    versionsApplied++;
  }
  async function readKv(key) {
    try {
      if (!kv) kv = await js.views.kv(bucket, { bindOnly: true });
      const e = await kv.get(key);
      return e && e.operation === "PUT" && e.value.length ? e.value : null;
    } catch (e) {
      kv = null; // the bucket may not exist yet
      return null;
    }
  }
  const sub = nc.subscribe(subjModel);
  (async () => {
    for await (const m of sub) {
      try {
        install(m.data);
      } catch (e) {
        console.error(`model broadcast refused: ${e.message}`);
      }
    }
  })();
  let nextKvRead = 0;
  async function pollKv() {
    if (Date.now() < nextKvRead) return;
    nextKvRead = Date.now() + 1000;
    const latest = await readKv("latest");
    if (latest) install(latest);
    const status = await readKv("status");
    if (status) install(status);
  }
  while (!model && Date.now() < deadline) {
    nextKvRead = 0;
    await pollKv();
    if (!model) await sleep(200);
  }
  if (!model) throw new Error(`no model in KV bucket ${bucket} (key "latest")`);

  // trajectories: JetStream publish with Nats-Msg-Id = <producer hex>:<seq>; the PubAck is the ack
  let seq = 0;
  let sent = 0;
  let sentTrajs = 0;
  let acked = 0;
  let ackedTrajs = 0;
  let refused = 0;
  const inflight = new Set();
  const ledger = args.ledger ? fs.openSync(args.ledger, "a") : null;
  function publish(trajs) {
    seq++;
    const s = seq;
    const h = headers();
    h.set("Relay-Batch-Seq", String(s));
    const id = `${producerHex}:${s}`;
    const body = batchBytes(pb, producer, s, trajs);
    sent++;
    sentTrajs += trajs.length;
    const p = (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          // a resend carries the same bytes and id: the stream drops a duplicate
          await js.publish(subjTraj, body, { msgID: id, headers: h, timeout: 10000 });
          acked++;
          ackedTrajs += trajs.length;
          if (ledger !== null) fs.writeSync(ledger, `${id},${trajs.length}\n`);
          return;
        } catch (e) {
          if (attempt >= 5) {
            refused++;
            console.error(`batch ${id} not acknowledged: ${e.message}`);
            return;
          }
          await sleep(500);
        }
      }
    })();
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  }

  const rand = mulberry32(args.seed);
  const env = new CartPole(rand);
  let obs = env.reset();
  let rows = [];
  let batch = [];
  let episodes = 0;
  let epRet = 0;
  const returns = [];
  let nextLine = Date.now() + 1000;
  while (Date.now() < deadline && finished === null) {
    const probsRaw = model.pi.run(obs);
    const probs = model.pi.softmaxOut ? probsRaw : softmax(probsRaw);
    const a = rand() < probs[0] ? 0 : 1;
    const logp = Math.log(Math.max(probs[a], 1e-12));
    const value = model.vf ? model.vf.run(obs)[0] : 0;
    const st = env.step(a);
    rows.push({ obs, act: a, reward: st.reward, term: st.term, trunc: st.trunc, logp, value, ts: nowNs() });
    epRet += st.reward;
    obs = st.obs;
    if (st.term || st.trunc) {
      const boot = st.trunc && model.vf ? model.vf.run(st.obs)[0] : 0;
      batch.push(makeTraj(producer, episodes, version, rows, boot));
      episodes++;
      returns.push(epRet);
      epRet = 0;
      rows = [];
      obs = env.reset();
      if (batch.length >= args.episodesPerBatch) {
        publish(batch);
        batch = [];
      }
      // let the I/O run: acks, broadcasts, the once-a-second KV read
      await pollKv();
      await new Promise((r) => setImmediate(r));
      // bound what is in flight (JetStream acks come back while we wait)
      while (inflight.size >= 64) await Promise.race(inflight);
    }
    if (Date.now() >= nextLine) {
      nextLine += 1000;
      const last = returns.slice(-20);
      const mean = last.length ? last.reduce((x, y) => x + y, 0) / last.length : 0;
      console.log(`version ${version}, ${episodes} episodes (mean return of the last 20: ${mean.toFixed(1)}), ` +
        `${sent} batches sent, ${acked} acked`);
    }
  }
  if (finished !== null) console.log(`server status: ${finished}`);
  // drain: every batch acknowledged (or given up), then goodbye
  await Promise.allSettled([...inflight]);
  sub.unsubscribe();
  try {
    await control({ shutdown: { reason: clientId } });
  } catch (e) {
    console.error(`goodbye not answered: ${e.message}`);
  }
  if (ledger !== null) fs.closeSync(ledger);
  await nc.drain();
  console.log(`producer ${producerHex}; batches sent ${sent}, acked ${acked}; trajectories ${sentTrajs}, ` +
    `acked ${ackedTrajs}; episodes ${episodes}; versions applied ${versionsApplied}`);
  return refused ? 3 : 0;
}

main().then(
  (rc) => process.exit(rc),
  (e) => {
    console.error(`relay_nats_client: ${e.message}`);
    process.exit(2);
  },
);
