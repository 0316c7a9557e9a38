#!/usr/bin/env python3
"""Workspace backups, side by side in one run: the archive path the workspace
supervisor used before restic (tar | gzip of the whole workspace, its SHA-256,
a read-back listing) against restic, on a generated workspace of about 1 GiB
in many files. For each: the first backup, a second with nothing changed, a
third after changing about 10 MiB; time (median of RUNS rounds) and bytes
added to the store. Then a restore from a remote restic repository (moto's
S3 on loopback) of a smaller generated workspace compared with it:
contents, modes, symlinks, times (compared to the second), and the time
restic dump of the same snapshot takes, the way restore fetched it before.

Usage: bench/backups [--runs N] [--size-mib N]   (bench/backups installs what it needs)
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PASSWORD = "bench-password"


def generate(root, size_mib, seed=1):
    """Source trees, a node_modules-like tree of many small files, a few
    large binaries: about size_mib MiB. Deterministic for a seed."""
    rng = random.Random(seed)
    words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))) for _ in range(2000)]

    def text(n):
        out = []
        total = 0
        while total < n:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "\n"
            out.append(line)
            total += len(line)
        return "".join(out)[:n]

    budget = size_mib << 20
    # 15%: sources, 25%: node_modules, 60%: binaries.
    for share, top, files_per_dir, size_range in ((0.15, "src", 40, (500, 12000)), (0.25, "node_modules", 25, (200, 6000))):
        left = int(budget * share)
        directory = 0
        while left > 0:
            path = os.path.join(root, top, f"pkg{directory // 20}", f"mod{directory}")
            os.makedirs(path, exist_ok=True)
            for index in range(files_per_dir):
                size = rng.randint(*size_range)
                with open(os.path.join(path, f"file{index}.js" if top == "node_modules" else f"unit{index}.swift"), "w") as f:
                    f.write(text(size))
                left -= size
                if left <= 0:
                    break
            directory += 1
    os.makedirs(os.path.join(root, "build"), exist_ok=True)
    left = int(budget * 0.60)
    index = 0
    while left > 0:
        size = min(left, 96 << 20)
        with open(os.path.join(root, "build", f"artifact{index}.bin"), "wb") as f:
            f.write(rng.randbytes(size))
        left -= size
        index += 1
    os.symlink("src/pkg0/mod0/unit0.swift", os.path.join(root, "entry"))
    os.chmod(os.path.join(root, "src", "pkg0", "mod0", "unit1.swift"), 0o600)


def change(root, mib=10, seed=2):
    """About mib MiB changed: a rewritten binary slice, edited sources, new files."""
    rng = random.Random(seed)
    with open(os.path.join(root, "build", "artifact0.bin"), "r+b") as f:
        f.seek(4 << 20)
        f.write(rng.randbytes((mib - 2) << 20))
    os.makedirs(os.path.join(root, "src", "new"), exist_ok=True)
    for index in range(200):
        with open(os.path.join(root, "src", "new", f"added{index}.swift"), "w") as f:
            f.write(f"// {index}\n" * 800)
    for index in range(20):
        with open(os.path.join(root, "src", "pkg0", "mod1", f"unit{index}.swift"), "a") as f:
            f.write("// edited\n" * 100)


def tree_size(path):
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(base, name)).st_size
    return total


def run(arguments, cwd=None, env=None, stdout=subprocess.DEVNULL):
    subprocess.run(arguments, cwd=cwd, env=env, stdout=stdout, check=True)


def archive_backup(workspace, store, round_name):
    """What the supervisor did before restic, command for command."""
    snapshot = os.path.join(store, round_name)
    os.makedirs(snapshot)
    archive = os.path.join(snapshot, "workspace.tar.gz")
    run(["tar", "--create", "--gzip", "--file", archive, "--numeric-owner", "--directory", workspace, "."])
    run(["sha256sum", archive])
    run(["tar", "--list", "--gzip", "--file", archive])
    run(["sync", archive])


def restic_env(repository, extra=None):
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": repository}
    env.update(extra or {})
    return env


def restic_backup(workspace, env):
    out = subprocess.run(["restic", "--no-cache", "backup", "--json", "--tag", "berth", "--host", "workspace", "."],
                         cwd=workspace, env=env, stdout=subprocess.PIPE, check=True).stdout.decode()
    summary = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"summary"' in line][-1]
    return summary["data_added"]


def timed(function):
    start = time.monotonic()
    result = function()
    return time.monotonic() - start, result


class Supervisor:
    """The real workspace-supervisor on a fresh mount, driven by POST /backup;
    each backup timed from the request to its log line."""

    def __init__(self, workspace, mount):
        binary = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "workspace-supervisor")
        env = {"PATH": os.environ["PATH"], "WORKSPACE_DIR": workspace, "SUPERVISOR_BACKUP_MOUNT_PATH": mount,
               "SUPERVISOR_HTTP_ADDR": "127.0.0.1:0", "SUPERVISOR_BACKUP_INTERVAL": "24h", "SUPERVISOR_BACKUP_SHUTDOWN_BUDGET": "0",
               "SUPERVISOR_IDE_PORT": "1", "SUPERVISOR_SSH_PORT": "2", "BERTH_USER": "nobody"}
        self.process = subprocess.Popen([binary], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        line = self.next_line("status API on ")
        self.port = int(line.rsplit("port ", 1)[1].rstrip(")\n"))

    def next_line(self, *texts, limit=3600):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise RuntimeError("workspace-supervisor ended")
            if any(text in line for text in texts):
                return line
        raise RuntimeError(f"no {texts} within {limit} s")

    def backup(self):
        """Seconds from POST /backup to the log line of its outcome, and that line."""
        start = time.monotonic()
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        connection.sendall(b"POST /backup HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        answer = connection.recv(4096).decode()
        connection.close()
        if " 202 " not in answer.split("\r\n", 1)[0]:
            raise RuntimeError(f"POST /backup: {answer}")
        line = self.next_line("(POST /backup): ", "workspace-supervisor: backup ")
        return time.monotonic() - start, line

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def rounds(workspace_master, runs, scratch):
    """Each round: a fresh copy of the workspace and fresh stores, three
    backups by each path. Returns {path: {step: [(seconds, bytes)]}}."""
    results = {"archive": {}, "restic": {}}
    for number in range(runs):
        workspace = os.path.join(scratch, f"workspace-{number}")
        run(["cp", "-a", workspace_master, workspace])
        archive_store = os.path.join(scratch, f"archives-{number}")
        os.makedirs(archive_store)
        repository = os.path.join(scratch, f"restic-{number}")
        env = restic_env(repository)
        run(["restic", "init"], env=env)
        for step in ("first", "unchanged", "changed"):
            if step == "changed":
                change(workspace)
            run(["sync"])
            before = tree_size(archive_store)
            seconds, _ = timed(lambda: archive_backup(workspace, archive_store, step))
            results["archive"].setdefault(step, []).append((seconds, tree_size(archive_store) - before))
            run(["sync"])
            before = tree_size(repository)
            seconds, _ = timed(lambda: restic_backup(workspace, env))
            run(["sync"])
            results["restic"].setdefault(step, []).append((seconds, tree_size(repository) - before))
        # The supervisor itself, asked three times on a fresh mount: its
        # first backup, the second with nothing changed (its listing's
        # fingerprint answers: skipped), a third after another change.
        mount = os.path.join(scratch, f"mount-{number}")
        os.makedirs(mount, mode=0o700)
        supervisor = Supervisor(workspace, mount)
        try:
            for step in ("first", "unchanged", "changed"):
                if step == "changed":
                    change(workspace, seed=5)  # other bytes than the change above
                run(["sync"])
                before = tree_size(mount)
                seconds, line = supervisor.backup()
                expected = "backup skipped" if step == "unchanged" else "workspace-supervisor: backup "
                if expected not in line:
                    raise RuntimeError(f"{step}: {line}")
                run(["sync"])
                results.setdefault("supervisor", {}).setdefault(step, []).append((seconds, tree_size(mount) - before))
        finally:
            supervisor.stop()
        shutil.rmtree(mount)
        shutil.rmtree(workspace)
        shutil.rmtree(archive_store)
        shutil.rmtree(repository)
    return results


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listing(root):
    """Type, mode, link target, modification second, size and SHA-256 of everything below root."""
    entries = []
    for base, directories, files in os.walk(root):
        for name in sorted(directories + files):
            path = os.path.join(base, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, root)
            kind = "l" if os.path.islink(path) else ("d" if os.path.isdir(path) else "f")
            digest = ""
            if kind == "f":
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            target = os.readlink(path) if kind == "l" else ""
            entries.append((relative, kind, oct(info.st_mode & 0o7777), target, round(info.st_mtime), info.st_size if kind == "f" else 0, digest))
    return sorted(entries)


def remote_restore(workspace, scratch, python):
    """A restic repository in moto's S3 (signatures checked), a backup into
    it, and workspace-supervisor's restore from it into an empty directory."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    server = subprocess.Popen([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "moto_s3_user.py")
        setup = subprocess.run([python, fixture, url, "bench"], env=env, stdout=subprocess.PIPE, check=True)
        key_id, secret = setup.stdout.decode().split()
        aws = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
        renv = restic_env(f"s3:{url}/bench/ws", aws)
        run(["restic", "--no-cache", "init"], env=renv)
        seconds_up, _ = timed(lambda: restic_backup(workspace, renv))
        volume = os.path.join(scratch, "new-volume")
        os.makedirs(volume, mode=0o700)
        target = os.path.join(scratch, "restored")
        supervisor = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "workspace-supervisor")
        senv = {"PATH": os.environ["PATH"], "SUPERVISOR_BACKUP_MOUNT_PATH": volume, "SUPERVISOR_HTTP_ENABLED": "0",
                "SUPERVISOR_BACKUP_S3_URL": f"{url}/bench/ws", "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
                "SUPERVISOR_BACKUP_PASSWORD": PASSWORD, "BERTH_USER": "nobody"}
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.chmod(scratch, 0o711)
        shutil.chown(scratch, "root")
        os.makedirs(target)
        shutil.chown(target, "nobody")
        seconds_down, _ = timed(lambda: run([supervisor, "restore", "latest", target], env=senv))
        # The peer: what restore used to fetch the snapshot with (restic
        # dump asks S3 for every blob in turn), in the same run.
        with open(os.devnull, "wb") as sink:
            seconds_dump, _ = timed(lambda: subprocess.run(["restic", "--no-cache", "dump", "--archive", "tar", "latest", "/"],
                                                           env=renv, stdout=sink, stderr=subprocess.DEVNULL, check=True))
        return seconds_up, seconds_down, seconds_dump, listing(workspace) == listing(target)
    finally:
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--remote-size-mib", type=int, default=64,
                        help="the workspace for the S3 round trip (0: none)")
    parser.add_argument("--python", default=sys.executable, help="a Python with moto[server]")
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="berth-bench-backups-", dir="/var/tmp")
    try:
        master = os.path.join(scratch, "master")
        generate(master, options.size_mib)
        files = sum(len(f) for _, _, f in os.walk(master))
        print(f"workspace: {tree_size(master) / 2**20:.0f} MiB in {files} files; {options.runs} rounds; "
              f"restic {subprocess.run(['restic', 'version'], stdout=subprocess.PIPE).stdout.decode().split()[1]}", flush=True)
        results = rounds(master, options.runs, scratch)
        def median(path, step, index):
            return statistics.median(entry[index] for entry in results[path][step])
        print("\n| backup | archive path: time | bytes added | restic alone: time | bytes added | workspace-supervisor (POST /backup): time | bytes added |")
        print("|---|---|---|---|---|---|---|")
        labels = {"first": "first", "unchanged": "second, nothing changed", "changed": "third, ~10 MiB changed"}
        for step in ("first", "unchanged", "changed"):
            cells = [f"{median(path, step, 0):.2f} s | {median(path, step, 1) / 2**20:.2f} MiB" for path in ("archive", "restic", "supervisor")]
            print(f"| {labels[step]} | " + " | ".join(cells) + " |")
        for path in ("restic", "supervisor"):
            first = median(path, "first", 0)
            print(f"\n{path}: the unchanged second took {median(path, 'unchanged', 0) / first:.3f} of the first's time (target < 0.1) and added "
                  f"{median(path, 'unchanged', 1) / 2**20:.3f} MiB (target < 1 MiB); the changed third added "
                  f"{median(path, 'changed', 1) / 2**20:.2f} MiB (target < 15 MiB)")
        if options.remote_size_mib == 0:
            return 0
        remote = os.path.join(scratch, "remote-master")
        generate(remote, options.remote_size_mib, seed=3)
        remote_files = sum(len(f) for _, _, f in os.walk(remote))
        up, down, dump, same = remote_restore(remote, scratch, options.python)
        print(f"remote (moto S3 on loopback, {options.remote_size_mib} MiB in {remote_files} files): backup {up:.1f} s, "
              f"restore into an empty directory {down:.1f} s (restic dump of the same snapshot, the former way: {dump:.1f} s; "
              f"ratio {down / dump:.2f}), "
              f"byte-identical (contents, modes, symlinks, times to the second): {'yes' if same else 'NO'}")
        return 0 if same else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
