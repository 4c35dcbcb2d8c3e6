#!/usr/bin/python3
"""A foreign actor process for `relay server --zmq`, written from docs/PROTOCOL.md alone.

usage: relay_zmq_client.py URL PROTO_DIR [--seconds S] [--episodes-per-batch K]
                           [--curve-secret FILE --curve-server FILE]

Debian packages only: python3-zmq, python3-protobuf, python3-numpy and protoc (protobuf-compiler).
It generates relay_pb2 / onnx_subset_pb2 from PROTO_DIR with protoc, says hello (Handshake over
CTL_REQ), gets the latest model (MODEL_REQ), runs its own NumPy CartPole with the policy and the
critic evaluated from the ONNX graphs (Gemm + activations), sends trajectory batches (TRAJ, one
batch per K episodes) and counts their acknowledgements, and applies every new model version the
server publishes (SUB, topic "M"). Envelopes it sends are plaintext and uncompressed; it reads
uncompressed and LZ4-compressed ones. It prints one line per second and a summary at the end:
"producer <hex>; batches sent N, acked A; episodes E; versions applied V".
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np
import zmq

# ---- envelopes (PROTOCOL.md sections 2, 6) --------------------------------------------------

CRC_TABLE = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    CRC_TABLE.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ CRC_TABLE[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def lz4_block_decompress(src, size):
    """LZ4 raw block format: sequences of literals and back-references."""
    out = bytearray()
    i = 0
    while i < len(src):
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        out += src[i:i + lit]
        i += lit
        if i >= len(src):
            break
        off = src[i] | (src[i + 1] << 8)
        i += 2
        ml = token & 15
        if ml == 15:
            while True:
                b = src[i]
                i += 1
                ml += b
                if b != 255:
                    break
        ml += 4
        start = len(out) - off
        if off <= 0 or start < 0:
            raise ValueError("lz4: bad offset")
        for k in range(ml):
            out.append(out[start + k])
    if len(out) != size:
        raise ValueError("lz4: %d bytes, expected %d" % (len(out), size))
    return bytes(out)


def seal(pb, msg):
    data = msg.SerializeToString()
    kind = msg.DESCRIPTOR.fields_by_name[msg.WhichOneof("body")].number
    head = b"RLYE" + bytes([1, 0, 0, kind]) + struct.pack("<II", len(data), len(data))
    return head + struct.pack("<I", crc32c(head + data)) + data


def open_envelope(pb, env):
    magic, ver, flags, comp, kind, stored, original, crc = struct.unpack_from("<4sBBBBIII", env)
    if magic != b"RLYE" or ver != 1:
        raise ValueError("not a Relay envelope")
    if flags & 1:
        raise ValueError("encrypted envelope: this client has no key support")
    if crc != crc32c(env[:16] + env[20:]):
        raise ValueError("envelope checksum mismatch")
    payload = env[20:20 + stored]
    if comp == 1:
        payload = lz4_block_decompress(payload, original)
    elif comp != 0:
        raise ValueError("compression %d not supported here" % comp)
    m = pb.Message.FromString(payload)
    return m


# ---- ZeroMQ frames (PROTOCOL.md section 11) -------------------------------------------------

TRAJ, ACK, CTL_REQ, CTL_REP, MODEL_REQ, MODEL_REP = 1, 2, 3, 4, 5, 6


def header(kind, corr, status=0):
    return b"RZ" + bytes([1, kind, status, 0, 0, 0]) + struct.pack("<Q", corr)


def parse_header(h):
    if len(h) != 16 or h[:2] != b"RZ" or h[2] != 1:
        raise ValueError("bad header")
    return h[3], h[4], struct.unpack_from("<Q", h, 8)[0]


# ---- ONNX MLP evaluation (Gemm with transB + Relu/Tanh/Sigmoid/Softmax) ----------------------

class Mlp:
    def __init__(self, onnx_pb, data):
        m = onnx_pb.ModelProto.FromString(data)
        g = m.graph
        self.init = {}
        for t in g.initializer:
            if t.raw_data:
                a = np.frombuffer(t.raw_data, dtype=np.float32)
            else:
                a = np.array(t.float_data, dtype=np.float32)
            self.init[t.name] = a.reshape(list(t.dims))
        self.nodes = list(g.node)
        self.input = g.input[0].name
        self.output = g.output[0].name

    def __call__(self, x):
        v = {self.input: np.asarray(x, dtype=np.float32).reshape(1, -1)}
        v.update(self.init)
        for n in self.nodes:
            a = v[n.input[0]]
            if n.op_type == "Gemm":
                tb = any(at.name == "transB" and at.i == 1 for at in n.attribute)
                w = v[n.input[1]]
                y = a @ (w.T if tb else w)
                if len(n.input) > 2:
                    y = y + v[n.input[2]]
            elif n.op_type == "Relu":
                y = np.maximum(a, 0)
            elif n.op_type == "Tanh":
                y = np.tanh(a)
            elif n.op_type == "Sigmoid":
                y = 1 / (1 + np.exp(-a))
            elif n.op_type == "Softmax":
                e = np.exp(a - a.max(axis=-1, keepdims=True))
                y = e / e.sum(axis=-1, keepdims=True)
            else:
                raise ValueError("ONNX op %s not supported by this client" % n.op_type)
            v[n.output[0]] = y
        self.softmax_out = self.nodes[-1].op_type == "Softmax"
        return v[self.output][0]


# ---- CartPole-v1 (Gymnasium's dynamics) -----------------------------------------------------

class CartPole:
    def __init__(self, rng):
        self.rng = rng

    def reset(self):
        self.s = self.rng.uniform(-0.05, 0.05, size=4)
        self.t = 0
        return self.s.astype(np.float32)

    def step(self, a):
        x, xd, th, thd = self.s
        force = 10.0 if a == 1 else -10.0
        ct, st = np.cos(th), np.sin(th)
        temp = (force + 0.05 * thd * thd * st) / 1.1
        thacc = (9.8 * st - ct * temp) / (0.5 * (4.0 / 3.0 - 0.1 * ct * ct / 1.1))
        xacc = temp - 0.05 * thacc * ct / 1.1
        x, xd = x + 0.02 * xd, xd + 0.02 * xacc
        th, thd = th + 0.02 * thd, thd + 0.02 * thacc
        self.s = np.array([x, xd, th, thd])
        self.t += 1
        term = bool(abs(x) > 2.4 or abs(th) > 12 * 2 * np.pi / 360)
        trunc = self.t >= 500 and not term
        return self.s.astype(np.float32), 1.0, term, trunc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("proto_dir")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--episodes-per-batch", type=int, default=4)
    ap.add_argument("--curve-secret")
    ap.add_argument("--curve-server")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="relay-pyclient-")
    for p in ("relay.proto", "onnx_subset.proto"):
        subprocess.check_call(["protoc", "--python_out=" + tmp, "-I" + args.proto_dir,
                               os.path.join(args.proto_dir, p)])
    sys.path.insert(0, tmp)
    import relay_pb2 as pb  # noqa: E402
    import onnx_subset_pb2 as onnx_pb  # noqa: E402

    ctx = zmq.Context()
    dealer, sub = ctx.socket(zmq.DEALER), ctx.socket(zmq.SUB)
    for s in (dealer, sub):
        s.linger = 0
        if args.curve_secret:
            def z85(path):
                with open(path) as f:
                    return [l.strip() for l in f if l.strip() and not l.startswith("#")][0]
            secret = z85(args.curve_secret).encode()
            s.curve_secretkey = secret
            s.curve_publickey = zmq.curve_public(secret)
            s.curve_serverkey = z85(args.curve_server).encode()
    host, port = args.url.rsplit(":", 1)
    dealer.connect(args.url)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect("%s:%d" % (host, int(port) + 1))

    producer = uuid.uuid4().bytes
    client_id = "python-client-%d" % os.getpid()
    req_id = [0]

    def request(kind, body, timeout=5.0):
        req_id[0] += 1
        dealer.send_multipart([header(kind, req_id[0]), body])
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if dealer.poll(100):
                parts = dealer.recv_multipart()
                k, status, corr = parse_header(parts[0])
                if k == ACK:
                    on_ack(corr, status)
                    continue
                if corr == req_id[0]:
                    return status, parts[1:]
        raise TimeoutError("no reply from %s" % args.url)

    acked = set()

    def on_ack(seq, status):
        acked.add(seq)

    hello = pb.Message(handshake=pb.Handshake(client_id=client_id, requested_model_version=-1))
    status, _ = request(CTL_REQ, seal(pb, hello))
    model = None
    version = -1
    deadline = time.monotonic() + 30
    while model is None and time.monotonic() < deadline:
        status, parts = request(MODEL_REQ, struct.pack("<q", -1))
        if len(parts) == 3 and parts[1]:
            m = open_envelope(pb, parts[1])
            b = m.model_update.bundle
            model = (Mlp(onnx_pb, b.onnx), Mlp(onnx_pb, b.value_onnx))
            version = b.version
        else:
            time.sleep(0.2)
    if model is None:
        print("no model from the server", file=sys.stderr)
        return 1
    versions_applied = 1

    rng = np.random.default_rng(args.seed)
    env = CartPole(rng)
    obs = env.reset()
    rows = []
    episodes_in_batch, batch_trajs = 0, []
    sent = episodes = 0
    seq = 0
    t_end = time.monotonic() + args.seconds
    next_line = time.monotonic() + 1
    returns = []
    ep_ret = 0.0
    while time.monotonic() < t_end:
        # new models (SUB, topic "M"); acks (DEALER)
        while sub.poll(0):
            topic, meta, data = sub.recv_multipart()
            v = struct.unpack_from("<q", meta)[0]
            if topic == b"M" and v > version:
                b = open_envelope(pb, data).model_update.bundle
                model = (Mlp(onnx_pb, b.onnx), Mlp(onnx_pb, b.value_onnx))
                version = b.version
                versions_applied += 1
            elif topic == b"S":
                print("server status:", open_envelope(pb, data).shutdown.reason)
                t_end = 0
        while dealer.poll(0):
            parts = dealer.recv_multipart()
            k, status, corr = parse_header(parts[0])
            if k == ACK:
                on_ack(corr, status)
        pi, vf = model
        out = pi(obs)
        probs = out if pi.softmax_out else np.exp(out - out.max()) / np.exp(out - out.max()).sum()
        a = int(rng.choice(len(probs), p=probs / probs.sum()))
        logp = float(np.log(max(probs[a], 1e-12)))
        value = float(vf(obs)[0])
        nobs, r, term, trunc = env.step(a)
        rows.append((obs, a, r, term, trunc, logp, value, time.time_ns()))
        ep_ret += r
        obs = nobs
        if term or trunc:
            boot = float(vf(nobs)[0]) if trunc else 0.0
            batch_trajs.append(make_traj(pb, producer, episodes, version, rows, boot))
            episodes += 1
            returns.append(ep_ret)
            ep_ret = 0.0
            rows = []
            obs = env.reset()
            if len(batch_trajs) >= args.episodes_per_batch:
                seq += 1
                body = b"RLYB" + bytes([1, 0, 0, 0]) + producer + struct.pack("<QI", seq,
                                                                             len(batch_trajs))
                for t in batch_trajs:
                    env_bytes = seal(pb, pb.Message(trajectory=t))
                    body += varint(len(env_bytes)) + env_bytes
                dealer.send_multipart([header(TRAJ, seq), body])
                sent += 1
                batch_trajs = []
        if time.monotonic() >= next_line:
            next_line += 1
            print("version %d, %d episodes (mean return of the last 20: %.1f), %d batches sent, "
                  "%d acked" % (version, episodes, np.mean(returns[-20:]) if returns else 0, sent,
                               len(acked)), flush=True)
    # wait a little for the acknowledgements still to come (the server acks after checkpoints)
    end = time.monotonic() + 5
    while len(acked) < sent and time.monotonic() < end:
        if dealer.poll(100):
            parts = dealer.recv_multipart()
            k, status, corr = parse_header(parts[0])
            if k == ACK:
                on_ack(corr, status)
    print("producer %s; batches sent %d, acked %d; episodes %d; versions applied %d"
          % (producer.hex(), sent, len(acked), episodes, versions_applied), flush=True)
    dealer.close()
    sub.close()
    ctx.term()
    return 0


def make_traj(pb, producer, episode, version, rows, boot):
    n = len(rows)
    t = pb.Trajectory(actor_id=producer, env_id=-1, env_label="py-cartpole", episode=episode,
                      policy_version=version, start_ns=rows[0][7], end_ns=rows[-1][7], max_len=0,
                      len=n)
    t.spec.obs.dtype = pb.DTYPE_F32
    t.spec.obs.shape.extend([4])
    t.spec.act.dtype = pb.DTYPE_I32
    t.spec.act.shape.extend([1])
    t.spec.aux_names.extend(["logp", "value", "bootstrap", "cut"])
    t.obs = np.stack([r[0] for r in rows]).astype(np.float32).tobytes()
    t.act = np.array([r[1] for r in rows], dtype=np.int32).tobytes()
    t.reward.extend([r[2] for r in rows])
    t.terminated = bytes(int(r[3]) for r in rows)
    t.truncated = bytes(int(r[4]) for r in rows)
    aux = []
    for i, r in enumerate(rows):
        aux += [r[5], r[6], boot if i == n - 1 else 0.0, 0.0]
    t.aux.extend(aux)
    t.timestamps_ns.extend([r[7] for r in rows])
    return t


if __name__ == "__main__":
    sys.exit(main())
