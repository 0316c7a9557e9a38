"""User-space instructions the init itself executes, counted by callgrind.

Wall-clock numbers on a shared machine swing by tens of percent; an
instruction count repeats to within a few hundred. Only the init's own
process is counted (--trace-children=no: the child it execs runs natively,
and the output file named after the init's pid is the one read).

- start-up: `INIT -- /bin/true`, not PID 1 (as the wall-clock start-up).
- per reaped orphan: the init as PID 1 of a fresh PID namespace while its
  child makes N, then 2N orphans and waits until every one was reaped; the
  difference divided by N, so start-up and shutdown cancel out.

Every init gets the same environment: a fixed one shaped like a workspace
container's (twenty variables, none of which asks berth to provision or
supervise anything), so the figures do not depend on the caller's shell.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

TARGETS = {
    "startup": 3.0,   # berth / tini, instructions of INIT -- /bin/true
    "per_orphan": 2.0,  # berth / tini, instructions per reaped orphan
}

ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOSTNAME": "0123456789ab",
    "HOME": "/root",
    "TERM": "xterm",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "Etc/UTC",
    "DEBIAN_FRONTEND": "noninteractive",
    "WORKSPACE_DIR": "/workspace",
    "GIT_USER_NAME": "Dev Eight",
    "GIT_USER_EMAIL": "dev8@example.com",
    "EDITOR": "vim",
    "PAGER": "less",
    "NODE_VERSION": "22.11.0",
    "PYTHON_VERSION": "3.12.7",
    "GOPATH": "/home/dev8/go",
    "CARGO_HOME": "/usr/local/cargo",
    "RUSTUP_HOME": "/usr/local/rustup",
    "JAVA_HOME": "/usr/lib/jvm/java-17-openjdk-amd64",
    "NO_COLOR": "1",
}


def callgrind_count(argv, pid1=False, timeout=300):
    """Instructions (Ir) the process running argv[0] executed; with pid1,
    as PID 1 of a new PID namespace (valgrind itself is PID 1 there, and
    its output file is out.1)."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as directory:
        valgrind = [shutil.which("valgrind"), "--tool=callgrind", "--trace-children=no",
                    f"--callgrind-out-file={directory}/out.%p", f"--log-file={directory}/log.%p"]
        command = (["unshare", "--pid", "--fork", "--mount-proc"] if pid1 else []) + valgrind + argv
        process = subprocess.Popen(command, env=ENVIRONMENT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status = process.wait(timeout=timeout)
        if status != 0:
            raise RuntimeError(f"{argv[0]} exited with {status} under callgrind")
        name = "out.1" if pid1 else f"out.{process.pid}"
        with open(os.path.join(directory, name)) as out:
            for line in out:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
    raise RuntimeError(f"no totals in callgrind's output for {argv[0]}")


def startup(peers, runs):
    return {name: statistics.median(callgrind_count(prefix + ["/bin/true"]) for _ in range(runs))
            for name, prefix in peers.items()}


def per_orphan(peers, testkit, runs, orphans):
    """(instructions at 2N - instructions at N) / N, medians over runs."""
    def storm(prefix, count):
        script = f"{testkit} orphans {count} >/dev/null && {testkit} zombies 20 >/dev/null"
        return callgrind_count(prefix + ["/bin/sh", "-c", script], pid1=True)
    result = {}
    for name, prefix in peers.items():
        single = statistics.median(storm(prefix, orphans) for _ in range(runs))
        double = statistics.median(storm(prefix, 2 * orphans) for _ in range(runs))
        result[name] = (double - single) / orphans
    return result


def measure(peers, testkit, quick):
    """Prints a table like bench.py's and returns [(label, passed)]."""
    print("counting instructions (callgrind) ...", file=sys.stderr)
    runs = 1 if quick else 3
    orphans = 2000
    start = startup(peers, runs)
    reap = per_orphan(peers, testkit, runs, orphans)
    names = list(peers)

    def row(label, values, fmt):
        cells = [fmt(values[name]) for name in names]
        print(f"| {label} | " + " | ".join(cells) + f" | {values['berth'] / values['tini']:.2f}x |")

    print()
    print("| callgrind, instructions (median) | " + " | ".join(names) + " | berth/tini |")
    print("|---|" + "---|" * (len(names) + 1))
    row("startup, `INIT -- /bin/true`", start, lambda v: f"{v:,.0f}")
    row(f"per reaped orphan (PID 1, {orphans:,} vs {2 * orphans:,})", reap, lambda v: f"{v:,.0f}")
    print(f"\nOnly the init's own process is counted; {len(ENVIRONMENT)} fixed variables; "
          f"{runs} run{'s' if runs > 1 else ''} each.")
    return [
        ("startup instructions <= %.1fx tini" % TARGETS["startup"], start["berth"] <= TARGETS["startup"] * start["tini"]),
        ("instructions per orphan <= %.1fx tini" % TARGETS["per_orphan"], reap["berth"] <= TARGETS["per_orphan"] * reap["tini"]),
    ]
