"""PID 1's memory while supervising sshd plus two services: berth against s6
(s6-svscan + one s6-supervise per service) and supervisord, the same three
services each, measured in the same run.

Each supervisor is PID 1 of a fresh PID and mount namespace with a private
/run (sshd needs /run/sshd; the machine's own /run is never touched). After
the services have settled, the supervisor's resident memory is read from
/proc: berth alone (it supervises in one process), s6-svscan plus its
s6-supervise children, supervisord's Python process. The services' own
memory is not counted: they are the same for all three.
"""
import os
import signal
import statistics
import subprocess
import tempfile
import time


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def descendants(pid):
    out = []
    for child in children(pid):
        out.append(child)
        out.extend(descendants(child))
    return out


def setup(directory, berth, port):
    key = os.path.join(directory, "hostkey")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    sshd = ["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-h", key, "-p", str(port), "-o", "PidFile=none", "-o", "UsePAM=no"]
    services = {"sshd": sshd, "alpha": ["/bin/sleep", "3600"], "beta": ["/bin/sleep", "3600"]}

    os.makedirs(os.path.join(directory, "services.d"))
    for svc, argv in services.items():
        with open(os.path.join(directory, "services.d", f"{svc}.toml"), "w") as f:
            f.write("command = [" + ", ".join(f'"{a}"' for a in argv) + "]\n")

    scan = os.path.join(directory, "s6")
    for svc, argv in services.items():
        os.makedirs(os.path.join(scan, svc))
        run = os.path.join(scan, svc, "run")
        with open(run, "w") as f:
            f.write("#!/bin/sh\nexec " + " ".join(argv) + "\n")
        os.chmod(run, 0o755)

    conf = os.path.join(directory, "supervisord.conf")
    with open(conf, "w") as f:
        f.write(f"[supervisord]\nnodaemon=true\nuser=root\nlogfile=/dev/null\npidfile={directory}/supervisord.pid\n")
        for svc, argv in services.items():
            f.write(f"[program:{svc}]\ncommand={' '.join(argv)}\nautorestart=true\n")

    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "BERTH_SERVICES_DIR": os.path.join(directory, "services.d"),
           "BERTH_RUN_DIR": os.path.join(directory, "run")}
    return {
        "berth": ([berth], env),
        "s6": (["/usr/bin/s6-svscan", scan], {"PATH": "/usr/sbin:/usr/bin:/bin"}),
        "supervisord": (["/usr/bin/supervisord", "-c", conf], {"PATH": "/usr/sbin:/usr/bin:/bin"}),
    }


def measure_once(argv, env, settle):
    # A private /run with /run/sshd, then the supervisor exec'd as PID 1.
    wrapper = ["unshare", "--pid", "--mount", "--fork", "--mount-proc", "sh", "-c",
               'mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec "$@"', "sh"] + argv
    proc = subprocess.Popen(wrapper, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        pid1 = None
        while time.time() < deadline and pid1 is None:
            kids = children(proc.pid)
            pid1 = kids[0] if kids else None
            time.sleep(0.02)
        time.sleep(settle)
        tree = descendants(pid1)
        names = [name(p) for p in tree]
        running = sum(1 for n in names if n in ("sshd", "sleep"))
        supervisor_pids = [pid1] + [p for p in tree if name(p) == "s6-supervise"]
        total = sum(rss_kib(p) for p in supervisor_pids)
        proportional = sum(pss_kib(p) for p in supervisor_pids)
        return total, proportional, running
    finally:
        if pid1:
            try:
                os.kill(pid1, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def supervision_memory(berth, rounds, settle=2.0):
    """Median RSS and PSS (KiB) per supervisor, and whether all three
    services ran each time. PSS splits pages shared between processes (s6's
    four share libc) among them: shown for context; the target is RSS."""
    with tempfile.TemporaryDirectory(prefix="berth-bench-supervise-") as directory:
        port = 20000 + os.getpid() % 10000
        setups = setup(directory, berth, port)
        samples = {name: [] for name in setups}
        shares = {name: [] for name in setups}
        complete = {name: True for name in setups}
        for _ in range(rounds):
            for name, (argv, env) in setups.items():
                total, proportional, running = measure_once(argv, env, settle)
                samples[name].append(total)
                shares[name].append(proportional)
                complete[name] = complete[name] and running >= 3
        median = lambda table: {name: statistics.median(values) for name, values in table.items()}
        return median(samples), median(shares), complete
