"""A throwaway single-node SLURM cluster for the ``slurm`` tests and ``bench/bench_slurm.py``
(which imports it as ``tests.helpers.slurm_cluster``).

It installs nothing: it uses Debian's ``munge``, ``slurmctld``, ``slurmd`` and ``slurm-client``
(installed by ``.ci/run``). This host is controller and only compute node; munged, slurmctld
and slurmd run as plain background processes (no systemd, no cgroups) with their state, logs,
key and socket under a temporary folder, and are stopped by PID.

The daemons run in a session of their own, so that a signal to the test run's process group
(Ctrl-C, ``timeout``) does not take them down before the jobs are cancelled, and the kernel
stops them if the process that started them dies (``PR_SET_PDEATHSIG``). :meth:`SlurmCluster.stop`
cancels every job, waits until no job step (``slurmstepd`` of this cluster) or process of a job
is left, then stops the daemons and waits for them and their children: nothing of the cluster
outlives it, and no Snakemake is left waiting for a job of a cluster that has gone.

Slurm's job-step helper (``snakemake-executor-plugin-slurm-jobstep``) drops ``SLURM_CONF``
from the environment of ``srun``, so the config must be found at its default place,
``/etc/slurm/slurm.conf``: the cluster writes it there and puts back what was there before.
That needs root. Without slurmdbd, ``sacct`` does not work; status polling must use
``squeue``, which only sees a finished job for ``MinJobAge`` seconds (set here to 300 s, more
than the plugin's longest pause between status checks, 180 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from geokd.atomic import _pid_alive as _alive
from geokd.lifeline import _set_parent_death_signal

SLURM_CONF = Path("/etc/slurm/slurm.conf")
BINARIES = (
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "srun",
    "squeue",
    "sinfo",
    "scontrol",
    "scancel",
)
MARKER = "# geokd test cluster"
PARTITION = "main"  # the partition named in workflow/profiles/slurm/config.yaml
#: job states after which SLURM runs nothing more for a job
FINAL_STATES = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT",
}  # fmt: skip


def write_test_profile(
    profile: Path, dest: Path, max_threads: int, init_seconds: int = 2, keep_logs: bool = True
) -> Path:
    """A copy of ``profile``'s config.yaml adapted to the test cluster; returns ``dest``.

    The changes: status polling with ``squeue`` (no slurmdbd here) after ``init_seconds``,
    thread counts capped at ``max_threads``, the test partition, no retries, and (with
    ``keep_logs``) every SLURM job log kept. Everything else is the profile as shipped.
    """
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["slurm-status-command"] = "squeue"
    settings["slurm-init-seconds-before-status-checks"] = init_seconds
    settings["slurm-keep-successful-logs"] = keep_logs
    settings["retries"] = 0
    settings["default-resources"]["slurm_partition"] = PARTITION
    settings["set-threads"] = {k: min(v, max_threads) for k, v in settings["set-threads"].items()}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return dest


def missing_requirements() -> str | None:
    """Why a cluster cannot be started here (missing binaries, not root), or None."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return (
            f"SLURM/munge binaries not found: {', '.join(missing)} "
            "(apt-get install slurmctld slurmd slurm-client munge; .ci/run does this)"
        )
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (it writes /etc/slurm/slurm.conf)"
    if SLURM_CONF.exists() and MARKER in SLURM_CONF.read_text(errors="replace"):
        pid = _marker_pid(SLURM_CONF.read_text(errors="replace"))
        if pid is not None and _alive(pid):
            return f"another geokd test cluster (pid {pid}) owns {SLURM_CONF}"
    return None


def _marker_pid(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(MARKER):
            try:
                return int(line.rsplit("pid", 1)[1].strip(" )"))
            except (IndexError, ValueError):
                return None
    return None


def left_by_a_dead_cluster(text: str) -> bool:
    """Whether a slurm.conf is a test cluster's whose pytest process is gone (a run killed
    before it could put the file back). Such a file points every SLURM client at a dead
    slurmctld: ``scontrol show config``, which the SLURM executor plugin runs at every
    Snakemake start, then waits about 10 s for it. It is removed, not kept as the backup."""
    if MARKER not in text:
        return False
    pid = _marker_pid(text)
    return pid is None or not _alive(pid)


def remove_a_dead_clusters_conf() -> bool:
    """Remove ``/etc/slurm/slurm.conf`` if a killed test run left it (``left_by_a_dead_cluster``);
    whether it did. Every test session does this at its start (tests/conftest.py), so that no
    Snakemake of the session waits for the dead slurmctld, SLURM tests or not."""
    try:
        if SLURM_CONF.exists() and left_by_a_dead_cluster(SLURM_CONF.read_text(errors="replace")):
            SLURM_CONF.unlink(missing_ok=True)
            return True
    except OSError:  # not root: nothing of ours to clean here
        pass
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_line() -> str:
    """``slurmd -C``'s NodeName line: this host's name, CPUs, sockets, cores, memory."""
    out = subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("NodeName="))
    return line.strip()


@dataclass
class SlurmCluster:
    """munged + slurmctld + slurmd on this host, state under ``root``; a context manager.

    Parameters
    ----------
    root
        Folder for the key, socket, state, spool and logs (created; left in place).
    min_job_age
        Seconds a finished job stays visible to ``squeue``.
    """

    root: Path
    min_job_age: int = 300
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    node: str = ""
    cpus: int = 0
    _backup: Path | None = None
    _wrote_conf: bool = False
    _made_dir: bool = False

    # -- configuration -------------------------------------------------------------------
    def config_text(self, node: str) -> str:
        """The slurm.conf for a single node described by ``node`` (a ``slurmd -C`` line)."""
        fields = dict(x.split("=", 1) for x in node.split() if "=" in x)
        host = fields["NodeName"]
        node_spec = " ".join(f"{k}={v}" for k, v in fields.items() if k != "UpTime")
        r = self.root
        return f"""{MARKER} (pid {os.getpid()})
ClusterName=geokdtest
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd, no cgroups (gVisor): track processes through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job that asks for no memory would take the whole node
DefMemPerCPU=500
ReturnToService=2
# finished jobs stay visible to squeue this long (the plugin polls at most every 180 s)
MinJobAge={self.min_job_age}
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
{node_spec} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""

    # -- life cycle -----------------------------------------------------------------------
    def start(self, timeout: float = 90) -> SlurmCluster:
        """Write the config, start the daemons and wait until the node is idle."""
        reason = missing_requirements()
        if reason:
            raise RuntimeError(reason)
        for sub in ("munge", "state", "spool", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        line = node_line()
        fields = dict(x.split("=", 1) for x in line.split() if "=" in x)
        self.node, self.cpus = fields["NodeName"], int(fields["CPUs"])
        try:
            self._write_conf(self.config_text(line))
            self._start_munge()
            self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
            self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld")
            self._spawn("slurmd", ["slurmd", "-D"])
            self._wait(self._node_idle, timeout, "slurmd (node idle)")
        except BaseException:
            self.stop()
            raise
        return self

    def _write_conf(self, text: str) -> None:
        if not SLURM_CONF.parent.exists():
            SLURM_CONF.parent.mkdir(parents=True)
            self._made_dir = True
        remove_a_dead_clusters_conf()  # not kept as the backup: this cluster's is removed too
        if SLURM_CONF.exists():
            self._backup = self.root / "slurm.conf.orig"
            shutil.copy2(SLURM_CONF, self._backup)
        self._wrote_conf = True
        SLURM_CONF.write_text(text)

    def _start_munge(self) -> None:
        d = self.root / "munge"
        key = d / "munge.key"
        subprocess.run(
            ["mungekey", "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        key.chmod(0o600)
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={d / 'munge.socket'}",
                f"--key-file={key}",
                f"--pid-file={d / 'munged.pid'}",
                f"--log-file={d / 'munged.log'}",
                f"--seed-file={d / 'munged.seed'}",
            ],
        )
        self._wait(lambda: (d / "munge.socket").exists(), 30, "munged")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: _set_parent_death_signal(signal.SIGTERM),
        )
        out.close()

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with status {proc.returncode} while waiting for "
                        f"{what}; see {self.root / 'log'}:\n{self.logs()}"
                    )
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}:\n{self.logs()}")

    @staticmethod
    def _ok(cmd: list[str], needle: str) -> bool:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0 and needle in done.stdout

    def _node_idle(self) -> bool:
        try:
            done = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T", "-n", self.node],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except subprocess.TimeoutExpired:
            return False
        state = done.stdout.strip()
        if state.startswith(("down", "drain")):
            subprocess.run(
                ["scontrol", "update", f"NodeName={self.node}", "State=RESUME"],
                capture_output=True,
                timeout=10,
            )
        return state == "idle"

    def queue(self) -> list[str]:
        """Lines ``jobid|state|name`` of every job slurmctld still knows about."""
        done = subprocess.run(
            ["squeue", "-h", "--states=all", "-o", "%i|%T|%j"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout.split()

    def logs(self, tail: int = 30) -> str:
        """The last lines of every daemon log."""
        parts = []
        for path in [*sorted((self.root / "log").glob("*")), self.root / "munge" / "munged.log"]:
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"== {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def steps(self) -> list[psutil.Process]:
        """This cluster's job-step managers (``slurmstepd``: they log to its slurmd.log and
        listen on a socket in its spool folder) and every process of their jobs."""
        found = []
        for p in psutil.process_iter(["name"]):
            if p.info["name"] != "slurmstepd":
                continue
            try:
                paths = [f.path for f in p.open_files()]
                paths += [c.laddr for c in p.net_connections(kind="unix") if c.laddr]
                if any(str(x).startswith(f"{self.root}/") for x in paths):
                    found += [p, *p.children(recursive=True)]
            except psutil.Error:
                continue
        return found

    def stop(self, timeout: float = 60) -> list[str]:
        """Cancel every job, wait for the job steps and their processes to end, stop the
        daemons and wait for them and their children, put /etc/slurm back. Returns the command
        lines of the processes that had to be killed after ``timeout`` seconds (none when the
        cluster stops cleanly)."""
        killed: list[str] = []
        try:
            if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
                self._cancel_jobs(timeout)
            killed += _wait_or_kill(self.steps(), timeout)
        finally:
            for name in ("slurmd", "slurmctld", "munged"):
                proc = self.procs.get(name)
                if proc is None:
                    continue
                try:
                    children = psutil.Process(proc.pid).children(recursive=True)
                except psutil.Error:
                    children = []
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        killed.append(name)
                        proc.kill()
                        proc.wait(timeout=10)
                killed += _wait_or_kill(children, 20)
            self._restore_conf()
        return killed

    def _cancel_jobs(self, timeout: float) -> None:
        """scancel every job SLURM has not finished; wait until none is left running."""

        def unfinished() -> list[str]:
            return [x for x in self.queue() if x.split("|")[1] not in FINAL_STATES]

        if not unfinished():
            return
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, timeout=30)
        end = time.monotonic() + timeout
        while time.monotonic() < end and unfinished():
            time.sleep(0.5)

    def _restore_conf(self) -> None:
        if not self._wrote_conf:
            return
        if self._backup is not None:
            shutil.copy2(self._backup, SLURM_CONF)
        else:
            SLURM_CONF.unlink(missing_ok=True)
            if self._made_dir:
                SLURM_CONF.parent.rmdir()
        self._wrote_conf = False

    def pids(self) -> list[int]:
        """PIDs of the daemons this cluster started."""
        return [p.pid for p in self.procs.values()]

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_or_kill(procs: list[psutil.Process], timeout: float) -> list[str]:
    """Wait up to ``timeout`` seconds for ``procs`` to end; SIGKILL the rest (their command
    lines are returned)."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    killed = []
    for p in alive:
        try:
            killed.append(" ".join(p.cmdline()) or p.name())
            p.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=10)
    return killed
