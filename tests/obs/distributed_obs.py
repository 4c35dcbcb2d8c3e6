#!/usr/bin/python3
"""Metrics and dashboard of distributed training: a NATS run (nats-server, `relay server`, two
`relay actors` processes, each with --metrics-addr on a free loopback port) is scraped every
second by a real Prometheus (Debian's); the test reads the series back through Prometheus's HTTP
API (the server's own, the actor processes' own, and the per-process series the server re-exports
from the processes' ActorStats reports) and checks that they are sane and increase. Then headless
Chromium loads the server's dashboard, waits for live updates with one row per actor process and
saves a screenshot (<build>/test-artifacts/server_dashboard.png). Everything started is stopped by
PID; nothing outside 127.0.0.1 is contacted."""
import base64
import json
import os
import re
import shutil
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obs_util import Procs, fetch, free_port, parse_metrics, start_chromium, wait_for  # noqa: E402

relay = sys.argv[1]
artifacts = sys.argv[2] if len(sys.argv) > 2 else "."
prometheus = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
nats_server = shutil.which("nats-server") or "/usr/bin/nats-server"
for tool in (prometheus, chromium, nats_server):
    if not os.path.exists(tool):
        print(f"SKIP: {tool} not installed (scripts/install-deps installs it)")
        sys.exit(77)

SERVER_SERIES = [
    "relay_learner_steps_total", "relay_learner_updates_total", "relay_learner_episodes_total",
    "relay_learner_mean_return", "relay_policy_version", "relay_policy_lag_versions",
    "relay_learner_update_seconds_total", "relay_learner_last_update_seconds",
    "relay_learner_update_duration_seconds_bucket", "relay_episode_return_bucket",
    "relay_env_steps_total", "relay_actor_processes", "relay_server_hellos_total",
    "relay_server_actor_reports_total", "relay_server_batches_total",
    "relay_server_trajectories_received_total", "relay_server_trajectories_total",
    "relay_server_rejected_total", "relay_trajectory_policy_lag_versions_bucket",
    "relay_actor_connected", "relay_actor_last_seen_seconds", "relay_actor_env_steps_total",
    "relay_actor_env_steps_per_second", "relay_actor_episodes_total", "relay_actor_spool_batches",
    "relay_actor_model_version", "relay_actor_trajectories_total", "relay_actor_batches_total",
    "relay_actor_router_queue_depth", "relay_actor_cpu_seconds_total",
    "relay_actor_resident_memory_bytes", "relay_process_resident_memory_bytes",
    "relay_process_cpu_seconds_total",
]
ACTORS_SERIES = [
    "relay_env_steps_total", "relay_router_queue_depth", "relay_router_delivered_total",
    "relay_dispatcher_dispatched_total", "relay_inference_batch_size_bucket",
    "relay_trajectories_total", "relay_publisher_trajectories_total",
    "relay_publisher_batches_total", "relay_publisher_send_errors_total", "relay_spool_batches",
    "relay_spool_bytes", "relay_model_version_installed", "relay_models_total",
    "relay_process_resident_memory_bytes",
]

with Procs() as procs:
    t0 = time.monotonic()

    def spawn(name, argv):
        return procs.start(argv, stdout=open(os.path.join(procs.tmp, name + ".log"), "w"),
                           stderr=__import__("subprocess").STDOUT, cwd=procs.tmp)

    nport = free_port()
    spawn("nats", [nats_server, "-js", "-a", "127.0.0.1", "-p", str(nport),
                   "-sd", os.path.join(procs.tmp, "js")])
    nats = f"nats://127.0.0.1:{nport}"
    wait_for(lambda: __import__("socket").create_connection(("127.0.0.1", nport), 1).close() or True,
             20, "nats-server to listen")
    sport, aports = free_port(), [free_port(), free_port()]
    common = ["--nats", nats, "--run", "obs", "--quiet", "--max-seconds", "80"]
    server = spawn("server", [relay, "server", *common, "--out", os.path.join(procs.tmp, "run"),
                              "--target", "100000", "--steps", "1000000000",
                              "--metrics-addr", f"127.0.0.1:{sport}"])
    actors = [spawn(f"actors{i}", [relay, "actors", *common, "--seed", str(7 + i), "--actors", "2",
                                   "--routers", "2", "--envs-per-actor", "4",
                                   "--metrics-addr", f"127.0.0.1:{aports[i]}"])
              for i in range(2)]
    procnames = {f"relay-actors-{a.pid}" for a in actors}
    surl = f"http://127.0.0.1:{sport}/"
    wait_for(lambda: fetch(surl + "healthz") == "ok\n", 20, "relay server's metrics endpoint")

    pport = free_port()
    cfg = os.path.join(procs.tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n"
                f"  - job_name: relay_server\n    static_configs:\n      - targets: ['127.0.0.1:{sport}']\n"
                "  - job_name: relay_actors\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{aports[0]}', '127.0.0.1:{aports[1]}']\n")
    spawn("prometheus", [prometheus, f"--config.file={cfg}",
                         f"--storage.tsdb.path={os.path.join(procs.tmp, 'tsdb')}",
                         f"--web.listen-address=127.0.0.1:{pport}"])
    api = f"http://127.0.0.1:{pport}/api/v1/"

    def query(q):
        r = json.loads(fetch(api + "query?query=" + urllib.parse.quote(q)))
        assert r["status"] == "success", r
        return r["data"]["result"]

    def all_up():
        r = query("up")
        return len(r) == 3 and all(float(x["value"][1]) == 1 for x in r)
    wait_for(all_up, 30, "Prometheus to scrape the server and both actor processes")

    def enough():
        r = query('relay_actor_env_steps_total{job="relay_server"}[30s]')
        return len(r) == 2 and all(len(x["values"]) >= 4 for x in r)
    wait_for(enough, 30, "four scrapes of both processes' env steps on the server")

    names = set(json.loads(fetch(api + "label/__name__/values"))["data"])
    missing = [n for n in set(SERVER_SERIES + ACTORS_SERIES) if n not in names]
    assert not missing, f"series missing in Prometheus: {missing}"
    for n in SERVER_SERIES:
        assert query(f'{n}{{job="relay_server"}}'), f"{n} not scraped from relay server"
    for n in ACTORS_SERIES:
        r = query(f'{n}{{job="relay_actors"}}')
        assert len({x["metric"]["instance"] for x in r}) == 2, f"{n} not from both actor processes"

    # per-process series on the server: one per actor process, named by its client id, increasing
    per = query('relay_actor_env_steps_total{job="relay_server"}[30s]')
    got = {x["metric"]["process"] for x in per}
    assert got == procnames, f"process labels {got}, want {procnames}"
    for x in per:
        v = [float(s[1]) for s in x["values"]]
        assert all(b >= a for a, b in zip(v, v[1:])) and v[-1] > v[0] > 0, (x["metric"], v)
    total = [float(s[1]) for s in query('relay_env_steps_total{job="relay_server"}[30s]')[0]["values"]]
    assert all(b >= a for a, b in zip(total, total[1:])) and total[-1] > total[0], total
    vers = [float(s[1]) for s in query('relay_policy_version{job="relay_server"}[30s]')[0]["values"]]
    assert vers[-1] > vers[0] >= 0, f"policy version did not increase: {vers}"
    assert float(query('relay_actor_processes{job="relay_server"}')[0]["value"][1]) == 2
    conn = query('relay_actor_connected{job="relay_server"}')
    assert sorted(float(x["value"][1]) for x in conn) == [1, 1], conn
    depth = query('relay_actor_router_queue_depth{job="relay_server"}')
    assert len(depth) == 4 and all(0 <= float(x["value"][1]) <= 16384 for x in depth), depth
    sps = query('relay_actor_env_steps_per_second{job="relay_server"}')
    assert all(float(x["value"][1]) > 0 for x in sps), sps
    seen = query('relay_actor_last_seen_seconds{job="relay_server"}')
    assert all(0 <= float(x["value"][1]) < 5 for x in seen), seen
    learned = float(query('relay_server_trajectories_total{job="relay_server",fate="learned"}')[0]["value"][1])
    assert learned > 0, learned
    rej = query('sum(relay_server_rejected_total{job="relay_server"})')
    assert float(rej[0]["value"][1]) == 0, rej
    lag = float(query('relay_policy_lag_versions{job="relay_server"}')[0]["value"][1])
    assert 0 <= lag <= 10, f"mean behaviour-policy lag {lag}"
    ret = query('relay_episode_return_count{job="relay_server"}')
    assert float(ret[0]["value"][1]) > 0, ret

    # the actor processes' own view agrees with what they reported (reports are <= 1 s old)
    srv_now = parse_metrics(fetch(surl + "metrics"))
    by_proc = {k: v for k, v in srv_now.items() if k.startswith("relay_actor_env_steps_total{")}
    assert srv_now["relay_env_steps_total"] >= sum(by_proc.values()) > 0, srv_now
    for i, a in enumerate(actors):
        own = parse_metrics(fetch(f"http://127.0.0.1:{aports[i]}/metrics"))
        rep = by_proc[f'relay_actor_env_steps_total{{process="relay-actors-{a.pid}"}}']
        assert own["relay_env_steps_total"] >= rep > 0, (own["relay_env_steps_total"], rep)
        assert own['relay_publisher_trajectories_total{state="made"}'] > 0, own
        assert own["relay_model_version_installed"] >= 0, own
    print(f"[{time.monotonic() - t0:5.1f}s] Prometheus: {len(names)} series names; server env steps "
          f"{total[0]:.0f} -> {total[-1]:.0f}, versions {vers[0]:.0f} -> {vers[-1]:.0f}, processes "
          f"{sorted(got)}", flush=True)

    # the server's dashboard in headless Chromium: live updates, one row per actor process
    dt = start_chromium(procs, chromium, "1280,1200")
    target = dt.call("Target.createTarget", {"url": surl + "?interval=300"})["targetId"]
    session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    dt.call("Runtime.enable", session=session)

    def page(expr):
        r = dt.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
        if "exceptionDetails" in r:
            raise AssertionError(f"page script error: {r['exceptionDetails']}")
        return r["result"].get("value")

    probe = ("JSON.stringify(window.relayDash ? {u: relayDash.updates, e: relayDash.errors, "
             "p: relayDash.points.length, steps: document.getElementById('steps').textContent, "
             "version: document.getElementById('version').textContent, "
             "nprocs: document.getElementById('nprocs').textContent, "
             "rows: [...document.querySelectorAll('#procs tr.proc')].map(r => "
             "[...r.children].map(c => c.textContent)), "
             "title: document.getElementById('title').textContent} : null)")
    state = lambda: json.loads(page(probe) or "null")  # noqa: E731
    first = wait_for(lambda: (lambda s: s if s and s["u"] >= 2 and s["p"] > 0 and len(s["rows"]) == 2
                              else None)(state()), 30, "the server dashboard's first live updates")
    later = wait_for(lambda: (lambda s: s if s["u"] >= first["u"] + 4 and s["steps"] != first["steps"]
                              and s["version"] != first["version"] and s["rows"] != first["rows"]
                              else None)(state()), 30, "the server dashboard's numbers to change")
    assert later["e"] == 0, f"the page saw {later['e']} failed polls"
    assert later["nprocs"] == "2", later
    assert {r[0] for r in later["rows"]} == procnames, later["rows"]
    for r in later["rows"]:
        assert r[1] == "connected", r
        assert re.fullmatch(r"[0-9.]+[kM]?", r[5]) and r[5] != "0", f"steps/s of {r[0]}: {r}"
        assert len(r[8].split()) == 2, f"two router queue depths for {r[0]}: {r}"
    assert "distributed" in later["title"], later
    shot = dt.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    os.makedirs(artifacts, exist_ok=True)
    png = os.path.join(artifacts, "server_dashboard.png")
    with open(png, "wb") as f:
        f.write(base64.b64decode(shot))
    assert os.path.getsize(png) > 10000, "screenshot suspiciously small"
    try:
        dt.call("Browser.close", timeout=5)
    except AssertionError:
        pass
    assert server.poll() is None and all(a.poll() is None for a in actors), "a process stopped"
    print(f"[{time.monotonic() - t0:5.1f}s] dashboard: {first['u']} -> {later['u']} updates, "
          f"curve {later['p']} points, rows {later['rows']}; screenshot {png}", flush=True)
print("distributed observability test passed")
