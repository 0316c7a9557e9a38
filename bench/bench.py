#!/usr/bin/env python3
"""berth against tini, dumb-init and catatonit, measured in the same run.

Every figure is a median (or percentile) over repeated runs, and each init is
compared with tini measured alongside it: absolute times on a shared machine
mean little, ratios measured together do. Targets are checked at the end;
the exit status says whether all were met.
"""
import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

import instructions
import supervise

TARGETS = {
    "startup": 2.0,        # berth / tini, median wall time of INIT -- /bin/true
    "reap_cpu": 1.0,       # berth / tini, init CPU per 10,000 reaped orphans
    "forward_p99": 1.5,    # berth / tini, signal forwarding latency p99
    "idle_rss_kib": 8192,  # berth alone
    "supervise_rss_kib": 6144,  # berth supervising sshd + 2 services; also below s6 and supervisord
}


def inits(berth):
    return {
        "berth": [berth, "--"],
        "tini": [shutil.which("tini"), "-s", "--"],
        "dumb-init": [shutil.which("dumb-init")],
        "catatonit": [shutil.which("catatonit"), "--"],
    }


def spawn_and_wait(argv):
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    return status


def startup(peers, runs):
    """Wall time of `INIT -- /bin/true`, runs interleaved in random order."""
    samples = {name: [] for name in peers}
    samples["(no init)"] = []
    order = list(peers.items()) + [("(no init)", [])]
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)  # catatonit warns when it is not PID 1
    try:
        for _ in range(runs):
            random.shuffle(order)
            for name, prefix in order:
                argv = prefix + ["/bin/true"]
                start = time.perf_counter_ns()
                status = spawn_and_wait(argv)
                samples[name].append(time.perf_counter_ns() - start)
                assert status == 0, (name, status)
    finally:
        os.dup2(saved, 2)
    return {name: statistics.median(values) / 1e6 for name, values in samples.items()}


def init_cpu_ns(prefix, testkit, orphans):
    """CPU the init (PID 1 of a fresh namespace) spent, and zombies left."""
    script = f"{testkit} orphans {orphans} >/dev/null && {testkit} zombies 20 && cat /proc/1/schedstat"
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc"] + prefix + ["sh", "-c", script],
        capture_output=True, text=True, timeout=300,
    )
    lines = out.stdout.split("\n")
    zombies = next((int(l.split()[1]) for l in lines if l.startswith("zombies ")), -1)
    cpu = int(lines[-2].split()[0]) if out.returncode == 0 else -1
    return cpu, zombies


def reap_cpu(peers, testkit, runs, orphans):
    """CPU per `orphans` reaped: the run with orphans minus the run without.
    Peers take turns in a shuffled order each round, so drift in the
    machine's speed falls on all of them alike."""
    loaded = {name: [] for name in peers}
    idle = {name: [] for name in peers}
    zombies = {name: 0 for name in peers}
    order = list(peers.items())
    for _ in range(runs):
        random.shuffle(order)
        for name, prefix in order:
            cpu, left = init_cpu_ns(prefix, testkit, orphans)
            loaded[name].append(cpu)
            zombies[name] = max(zombies[name], left)
            idle[name].append(init_cpu_ns(prefix, testkit, 0)[0])
    return {name: ((statistics.median(loaded[name]) - statistics.median(idle[name])) / 1e6, zombies[name])
            for name in peers}


def forwarding(peers, testkit, count, rounds=10):
    """Time from kill(INIT, SIGUSR1) to the child's sigtimedwait returning,
    in rounds with the peers in a shuffled order."""
    samples = {name: [] for name in peers}
    order = list(peers.items())
    per_round = max(1, count // rounds)
    for _ in range(rounds):
        random.shuffle(order)
        for name, prefix in order:
            child = subprocess.Popen(prefix + [testkit, "signal-clock", str(per_round)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert child.stdout.readline().startswith("ready")
            time.sleep(0.05)
            for _ in range(per_round):
                time.sleep(0.002)
                sent = time.monotonic_ns()
                os.kill(child.pid, signal.SIGUSR1)
                samples[name].append(int(child.stdout.readline()) - sent)
            child.wait(timeout=10)
    result = {}
    for name, values in samples.items():
        values.sort()
        result[name] = (values[len(values) // 2] / 1e3, values[int(len(values) * 0.99)] / 1e3)
    return result


def idle_rss(peers, runs):
    result = {}
    for name, prefix in peers.items():
        values = []
        for _ in range(runs):
            child = subprocess.Popen(prefix + ["sleep", "30"], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            with open(f"/proc/{child.pid}/status") as status:
                rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
            child.kill()
            child.wait()
            subprocess.run(["pkill", "-f", "^sleep 30$"], check=False)
            values.append(rss)
        result[name] = statistics.median(values)
    return result


def sizes(peers):
    result = {name: os.path.getsize(os.path.realpath(prefix[0])) for name, prefix in peers.items()}
    static = shutil.which("tini-static")
    if static:
        result["tini-static"] = os.path.getsize(os.path.realpath(static))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--berth", required=True)
    parser.add_argument("--testkit", required=True)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--instructions", action="store_true",
                        help="only the callgrind instruction counts (repeatable on a busy machine)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root (PID namespaces need it)")
    peers = inits(os.path.abspath(args.berth))
    testkit = os.path.abspath(args.testkit)
    quick = args.quick

    if args.instructions:
        report(instructions.measure(peers, testkit, quick))

    print("measuring startup ...", file=sys.stderr)
    start = startup(peers, 60 if quick else 300)
    print("measuring reaping ...", file=sys.stderr)
    reap = reap_cpu(peers, testkit, 3 if quick else 9, 10000)
    print("measuring forwarding ...", file=sys.stderr)
    forward = forwarding(peers, testkit, 300 if quick else 1000)
    print("measuring memory ...", file=sys.stderr)
    rss = idle_rss(peers, 3)
    size = sizes(peers)
    print("measuring supervision memory ...", file=sys.stderr)
    supervised, proportional, complete = supervise.supervision_memory(peers["berth"][0], 3)

    names = list(peers)
    def row(label, values, fmt):
        cells = [fmt(values[name]) for name in names]
        ratio = f"{values['berth'] / values['tini']:.2f}x" if values["tini"] else "-"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")

    print()
    print("| measure (median) | " + " | ".join(names) + " | berth/tini |")
    print("|---|" + "---|" * (len(names) + 1))
    row("startup, `INIT -- /bin/true` (ms)", start, lambda v: f"{v:.2f}")
    row("init CPU per 10,000 reaped orphans (ms)", {n: reap[n][0] for n in names}, lambda v: f"{v:.1f}")
    row("zombies left after 10,000 orphans", {n: reap[n][1] for n in names}, lambda v: f"{v}")
    row("signal forwarding p50 (µs)", {n: forward[n][0] for n in names}, lambda v: f"{v:.0f}")
    row("signal forwarding p99 (µs)", {n: forward[n][1] for n in names}, lambda v: f"{v:.0f}")
    row("idle RSS (KiB)", rss, lambda v: f"{v:.0f}")
    row("binary size (KiB)", size, lambda v: f"{v / 1024:.0f}")
    print(f"\n`/bin/true` alone: {start['(no init)']:.2f} ms. tini-static: {size.get('tini-static', 0) / 1024:.0f} KiB. "
          "tini runs with -s; catatonit and the others with their defaults.")

    print()
    print("| supervising sshd + 2 services (median RSS, KiB) | " + " | ".join(supervised) + " |")
    print("|---|" + "---|" * len(supervised))
    print("| PID 1 (s6: s6-svscan + 3 s6-supervise) | " + " | ".join(f"{v:.0f}" for v in supervised.values()) + " |")
    print("| PSS, same processes | " + " | ".join(f"{v:.0f}" for v in proportional.values()) + " |")
    print("| all 3 services running | " + " | ".join("yes" if ok else "NO" for ok in complete.values()) + " |")

    checks = [
        ("startup <= %.1fx tini" % TARGETS["startup"], start["berth"] / start["tini"] <= TARGETS["startup"]),
        ("reap CPU <= %.1fx tini" % TARGETS["reap_cpu"], reap["berth"][0] <= TARGETS["reap_cpu"] * reap["tini"][0]),
        ("forwarding p99 <= %.1fx tini" % TARGETS["forward_p99"], forward["berth"][1] <= TARGETS["forward_p99"] * forward["tini"][1]),
        ("idle RSS <= 8 MiB", rss["berth"] <= TARGETS["idle_rss_kib"]),
        ("zero zombies", reap["berth"][1] == 0),
        ("supervising: berth RSS <= 6 MiB", supervised["berth"] <= TARGETS["supervise_rss_kib"]),
        ("supervising: berth below s6 and supervisord",
         supervised["berth"] < supervised["s6"] and supervised["berth"] < supervised["supervisord"]),
        ("supervising: every supervisor ran all 3 services", all(complete.values())),
    ]
    # Printed last: callgrind runs the inits some 50 times slower, and the
    # wall-clock figures above should not share the machine with it.
    report(checks + instructions.measure(peers, testkit, quick))


def report(checks):
    print()
    for label, ok in checks:
        print(f"- {'PASS' if ok else 'FAIL'}: {label}")
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
