#!/usr/bin/python3
"""A real Prometheus (Debian's) scrapes a running `relay train` every second; the test reads the
series back through Prometheus's HTTP API and checks names, types and that values move the right
way (env steps and policy versions increase, queue depths and lag are sane)."""
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obs_util import Procs, fetch, free_port, start_train, wait_for  # noqa: E402

relay = sys.argv[1]
prometheus = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
if not os.path.exists(prometheus):
    print(f"SKIP: {prometheus} not installed (scripts/install-deps installs it)")
    sys.exit(77)

EXPECTED = [
    "relay_env_steps_total", "relay_episodes_total", "relay_trajectories_total", "relay_actors",
    "relay_routers", "relay_router_queue_depth", "relay_router_delivered_total",
    "relay_router_actors", "relay_dispatcher_dispatched_total", "relay_dispatcher_queued_total",
    "relay_dispatcher_retried_total", "relay_dispatcher_expired_total",
    "relay_dispatcher_rejected_total", "relay_dispatcher_pending_messages",
    "relay_inference_batch_size_bucket", "relay_sink_bytes_total", "relay_sink_trajectories_total",
    "relay_trajectory_buffer_blocked_total", "relay_trajectory_buffer_dropped_total",
    "relay_learner_update_seconds_total", "relay_learner_update_duration_seconds_bucket",
    "relay_policy_version", "relay_policy_lag_versions", "relay_episode_return_bucket",
    "relay_process_resident_memory_bytes", "relay_process_cpu_seconds_total",
    "relay_time_seconds_total",
]

with Procs() as procs:
    train, url, run, log = start_train(procs, relay, ["--sink", "binary", "--routers", "2"], 40)
    target = url[len("http://"):].rstrip("/")
    port = free_port()
    cfg = os.path.join(procs.tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                "scrape_configs:\n  - job_name: relay\n    static_configs:\n"
                f"      - targets: ['{target}']\n")
    prom_log = open(os.path.join(procs.tmp, "prometheus.log"), "w")
    procs.start([prometheus, f"--config.file={cfg}",
                 f"--storage.tsdb.path={os.path.join(procs.tmp, 'tsdb')}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=prom_log, stderr=prom_log)
    api = f"http://127.0.0.1:{port}/api/v1/"

    def query(q):
        r = json.loads(fetch(api + "query?query=" + urllib.parse.quote(q)))
        assert r["status"] == "success", r
        return r["data"]["result"]

    wait_for(lambda: query('up{job="relay"}') and float(query('up{job="relay"}')[0]["value"][1]) == 1,
             30, "Prometheus to scrape the relay target successfully")
    # Let a few scrapes accumulate, then read the last 30 s of samples.
    def enough():
        r = query('relay_env_steps_total{job="relay"}[30s]')
        return r and len(r[0]["values"]) >= 4
    wait_for(enough, 30, "four scrapes of relay_env_steps_total")

    names = set(json.loads(fetch(api + "label/__name__/values"))["data"])
    missing = [n for n in EXPECTED if n not in names]
    assert not missing, f"series missing in Prometheus: {missing}"

    steps = [float(v) for _, v in query('relay_env_steps_total{job="relay"}[30s]')[0]["values"]]
    assert all(b >= a for a, b in zip(steps, steps[1:])), f"env steps went down: {steps}"
    assert steps[-1] > steps[0], f"env steps did not increase: {steps}"
    vers = [float(v) for _, v in query('relay_policy_version{job="relay"}[30s]')[0]["values"]]
    assert vers[-1] > vers[0] >= 0, f"policy version did not increase: {vers}"
    rate = float(query('rate(relay_env_steps_total{job="relay"}[10s])')[0]["value"][1])
    assert rate > 0, f"rate(relay_env_steps_total) = {rate}"
    routers = query('relay_router_actors{job="relay"}')
    assert len(routers) == 2 and sum(float(r["value"][1]) for r in routers) == 2, routers
    depth = query('relay_router_queue_depth{job="relay"}')
    assert all(0 <= float(r["value"][1]) <= 16384 for r in depth), depth
    lag = float(query('relay_policy_lag_versions{job="relay"}')[0]["value"][1])
    assert 0 <= lag <= 2, f"policy lag {lag} (on-policy training keeps it at 0-1)"
    rss = float(query('relay_process_resident_memory_bytes{job="relay"}')[0]["value"][1])
    assert 1e6 < rss < 4e9, f"RSS {rss}"
    batch = query('relay_inference_batch_size_count{job="relay"}')
    assert float(batch[0]["value"][1]) > 0, batch
    # the binary sink buffers its writes: bytes may still be 0 early on, trajectories may not
    sink = query('relay_sink_trajectories_total{job="relay",sink="binary"}')
    assert sink and float(sink[0]["value"][1]) > 0, f"binary sink trajectories: {sink}"
    assert query('relay_sink_bytes_total{job="relay",sink="binary"}'), "no binary sink bytes series"
    ret = query('relay_episode_return_count{job="relay"}')
    assert float(ret[0]["value"][1]) > 0, ret
    fast = query('relay_dispatcher_dispatched_total{job="relay",path="fast"}')
    assert fast and float(fast[0]["value"][1]) > 0, fast
    assert train.poll() is None, "training stopped while being scraped"
    print(f"Prometheus scraped {len(steps)} samples: env steps {steps[0]:.0f} -> {steps[-1]:.0f}, "
          f"versions {vers[0]:.0f} -> {vers[-1]:.0f}, {len(names)} series names")
    train.terminate()
    rc = train.wait(timeout=30)
    out = open(log).read()
    assert rc == 0 and "interrupted" in out, f"relay train exit {rc}: {out}"
print("prometheus scrape test passed")
