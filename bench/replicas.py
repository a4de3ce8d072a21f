#!/usr/bin/env python3
"""The cost of the shared backends, side by side in one run: the same instant mock reached
through one Routerly replica in file mode, one replica on PostgreSQL + Redis, and three
replicas on PostgreSQL + Redis behind one nginx load balancer.

Run it with `./bench/run.sh --replicas` (which builds the release binary and installs wrk and
nginx). It uses the machine's PostgreSQL (127.0.0.1:5432, user postgres: a fresh database,
dropped at the end) and Redis (127.0.0.1:6379: a fresh key prefix, deleted at the end). The
gateways (every replica and the load balancer) are pinned to one core, the mock and wrk to
the other, as in `bench.py`; PostgreSQL and Redis run where the system puts them.

Every call is under two limits (a project cost limit and a token call limit, both far from
full), so the budget path runs: in memory in file mode, in shared mode from the replica's
lease on the limits' room in Redis (a reservation script per many calls). Besides
throughput and latency it prints the CPU time each call costs the gateways, PostgreSQL and
Redis (all of the machine's PostgreSQL and Redis server processes, which serve nothing else
while it runs): the figures that do not depend on how the two cores are shared. The
targets take turns at each concurrency (file mode, the shared replica, the three replicas,
then again), so a slow spell of a shared machine weighs on all of them alike rather than
on whichever ran during it.
"""

import argparse
import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import shutil
from pathlib import Path

import bench
from bench import Proc, free_port, request_body, run_cli, start_mock, start_nginx, wait_port, wrk

PSQL = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "test", "-q", "-v", "ON_ERROR_STOP=1"]
REDIS = "redis://127.0.0.1:6379/0"
CONCURRENCIES = [1, 16, 64]


def start_replica(name, cpus, shared=None):
    """A `routerly serve` with its own home; `shared` is (database url, secret key, prefix)."""
    root = bench.WORK / name
    root.mkdir()
    env = dict(os.environ, ROUTERLY_HOME=str(root / "home"), XDG_CONFIG_HOME=str(root / "xdg"),
               HOME=str(root), ROUTERLY_LOG="warn")
    if shared:
        database_url, secret_key, prefix = shared
        env.update(ROUTERLY_DATABASE_URL=database_url, ROUTERLY_SECRET_KEY=secret_key,
                   ROUTERLY_REDIS_URL=REDIS, ROUTERLY_REDIS_PREFIX=prefix)
    port = free_port()
    proc = Proc(name, [str(bench.RELEASE / "routerly"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                cpus, env=env)
    wait_port(port, proc=proc)
    return port, proc, env


def configure(port, env, mock_port):
    """The quick start: an admin, one model on the mock, a project, two limits, a token."""
    url = f"http://127.0.0.1:{port}"
    run_cli(env, "setup", "--url", url, "--email", "bench@example.com", "--password", "bench-password-1")
    run_cli(env, "model", "add", "--id", "bench-chat", "--provider", "openai", "--endpoint",
            f"http://127.0.0.1:{mock_port}/v1", "--api-key", "sk-bench-upstream", "--upstream-model", "gpt-4o-mini",
            "--input-price", "0.15", "--output-price", "0.6")
    project = json.loads(run_cli(env, "project", "create", "--name", "bench", "--json"))
    run_cli(env, "project", "model", "add", project["slug"], "bench-chat")
    token = json.loads(run_cli(env, "project", "token", "create", project["slug"], "--json"))
    run_cli(env, "limit", "add", "--scope", f"project:{project['id']}", "--metric", "cost", "--period", "daily",
            "--value", "1000000")
    run_cli(env, "limit", "add", "--scope", f"token:{token['id']}", "--metric", "calls", "--period", "daily",
            "--value", "1000000000")
    return token["token"]


def start_balancer(ports, cpus):
    port = free_port()
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
    proc = start_nginx("balancer", f"""
  upstream replicas {{
{servers}
    keepalive 256;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}""", cpus)
    wait_port(port)
    return port, proc


def backend_cpu_seconds():
    """CPU seconds used so far by every PostgreSQL and Redis server process of the machine
    (they serve only this benchmark while it runs), by name."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = {"postgres": 0.0, "redis-server": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        comm = head.split("(", 1)[1]
        name = "redis-server" if comm.startswith("redis-server") else comm
        if name in totals:
            fields = tail.split()
            totals[name] += (int(fields[11]) + int(fields[12])) / ticks
    return totals


def measure_once(port, token, procs, concurrency, args):
    """One wrk run at `concurrency`, with the CPU of every gateway process and of PostgreSQL
    and Redis, also per call."""
    body = request_body("bench-chat", False)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    cpu_before = sum(proc.cpu_seconds() for proc in procs)
    backends_before = backend_cpu_seconds()
    started = time.time()
    result = wrk(f"http://127.0.0.1:{port}/v1/chat/completions", body, headers, concurrency, args.duration,
                 args.client_cpu, None)
    elapsed = time.time() - started
    gateway_cpu = sum(proc.cpu_seconds() for proc in procs) - cpu_before
    backends = {key: value - backends_before[key] for key, value in backend_cpu_seconds().items()}
    result["cpu_pct"] = 100 * gateway_cpu / elapsed
    calls = max(result["rps"] * elapsed, 1)
    result["gateway_us_per_call"] = 1e6 * gateway_cpu / calls
    result["postgres_us_per_call"] = 1e6 * backends["postgres"] / calls
    result["redis_us_per_call"] = 1e6 * backends["redis-server"] / calls
    return result


def measure(targets, args):
    """Each concurrency `args.repeat` times, the targets taking turns within each round, so a
    slower spell of the machine falls on all of them alike; a cell is the median run, and
    a target's share of file mode's throughput the median of its rounds' ratios."""
    rows = []
    for concurrency in CONCURRENCIES:
        runs = {name: [] for name, *_ in targets}
        for _ in range(args.repeat):
            for name, port, token, procs in targets:
                runs[name].append(measure_once(port, token, procs, concurrency, args))
                time.sleep(1)  # the batches the run left behind go out before the next
        files = runs["1 replica, files"]
        for name, *_ in targets:
            ratios = sorted(run["rps"] / base["rps"] for run, base in zip(runs[name], files))
            cell = dict(sorted(runs[name], key=lambda r: r["rps"])[len(files) // 2], target=name,
                        concurrency=concurrency, vs_files=ratios[len(ratios) // 2])
            print(f"  {name:>22} c={concurrency:<3} {cell['rps']:9.0f} req/s  p50 {cell['p50_us'] / 1000:.3f} ms  "
                  f"p99 {cell['p99_us'] / 1000:.3f} ms  errors {cell['errors'] + cell['status_errors']}",
                  file=sys.stderr, flush=True)
            rows.append(cell)
    return rows


def run(args):
    gcpu, ccpu = args.gateway_cpu, args.client_cpu
    mock_port = start_mock(ccpu)
    results = {"machine": bench.machine(), "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "duration_s": args.duration, "repeat": args.repeat, "load": []}
    port, proc, env = start_replica("file", gcpu)
    targets = [("direct", mock_port, None, []), ("1 replica, files", port, configure(port, env, mock_port), [proc])]

    database = f"routerly_bench_{secrets.token_hex(6)}"
    prefix = f"routerly-bench-{secrets.token_hex(6)}"
    subprocess.run([*PSQL, "-c", f"CREATE DATABASE {database}"], check=True, capture_output=True)
    try:
        shared = (f"host=127.0.0.1 port=5432 user=postgres dbname={database}", secrets.token_hex(32), prefix)
        port, first, env = start_replica("shared-1", gcpu, shared)
        token = configure(port, env, mock_port)
        targets.append(("1 replica, PG + Redis", port, token, [first]))
        others = [start_replica(f"shared-{index}", gcpu, shared) for index in (2, 3)]
        time.sleep(1.5)  # the configuration reaches them within a second
        replica_ports = [port] + [other[0] for other in others]
        balancer_port, balancer = start_balancer(replica_ports, gcpu)
        targets.append(("3 replicas + nginx", balancer_port, token,
                        [first, *(other[1] for other in others), balancer]))
        results["load"] = measure(targets, args)
        for _, _, _, procs in targets:
            for proc in procs:
                proc.stop()
    finally:
        subprocess.run([*PSQL, "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], capture_output=True)
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", f"{prefix}:*"], capture_output=True,
                              text=True).stdout.split()
        if keys:
            subprocess.run(["redis-cli", "DEL", *keys], capture_output=True)
    return results


def report(results, args):
    m = results["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}; gateways "
             f"(replicas and load balancer) pinned to CPU {args.gateway_cpu}, mock and wrk to CPU {args.client_cpu}, "
             f"PostgreSQL and Redis unpinned; chat, {results['duration_s']} s per run, median of {results['repeat']} "
             f"rounds in which the targets take turns; "
             f"{results['started'][:16]} UTC.", "",
             "| target | conc | req/s | vs 1 replica, files | p50 ms | p99 ms | added p50 ms | added p99 ms "
             "| gateways' CPU % | gateways µs/call | PostgreSQL µs/call | Redis µs/call | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(target, concurrency):
        return next(c for c in results["load"] if c["target"] == target and c["concurrency"] == concurrency)
    for c in results["load"]:
        if c["target"] == "direct":
            continue
        direct = cell("direct", c["concurrency"])
        c["added_p50_us"], c["added_p99_us"] = c["p50_us"] - direct["p50_us"], c["p99_us"] - direct["p99_us"]
        lines.append(f"| {c['target']} | {c['concurrency']} | {c['rps']:.0f} | {c['vs_files']:.2f} "
                     f"| {c['p50_us'] / 1000:.3f} | {c['p99_us'] / 1000:.3f} | {c['added_p50_us'] / 1000:.3f} "
                     f"| {c['added_p99_us'] / 1000:.3f} | {c['cpu_pct']:.0f} | {c['gateway_us_per_call']:.0f} "
                     f"| {c['postgres_us_per_call']:.1f} | {c['redis_us_per_call']:.1f} "
                     f"| {c['errors'] + c['status_errors']} |")
    worst = min(cell("1 replica, PG + Redis", n)["vs_files"] for n in CONCURRENCIES)
    lines += ["", f"- {'met' if worst >= 0.7 else '**missed**'}: one replica on PostgreSQL + Redis keeps "
                  f"{100 * worst:.0f} % of file mode's throughput at its worst concurrency (target ≥ 70 %)"]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = results["started"][:19].replace(":", "").replace("-", "")
    path = out / f"replicas-{stamp}.json"
    results["table_markdown"] = text
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is reported")
    parser.add_argument("--gateway-cpu", default="1", help="core(s) of the gateways under test")
    parser.add_argument("--client-cpu", default="0", help="core(s) of the mock and the load generator")
    parser.add_argument("--out", default=str(bench.ROOT / "bench" / "results"), help="where the JSON goes")
    args = parser.parse_args()
    bench.WORK = Path(tempfile.mkdtemp(prefix="routerly-bench-replicas-"))
    try:
        results = run(args)
    finally:
        for proc in reversed(Proc.all):
            proc.stop()
        shutil.rmtree(bench.WORK, ignore_errors=True)
    report(results, args)


if __name__ == "__main__":
    main()
