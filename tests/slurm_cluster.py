"""A real single-node SLURM cluster on this host, for tests: munged, slurmctld and slurmd run
in the foreground as child processes, with every file they write (slurm.conf, munge key and
socket, state, spool, logs) in one folder, and are stopped by their process ids.

One thing lives outside that folder: /etc/slurm/slurm.conf, a symlink to the folder's
slurm.conf while the cluster runs. The SLURM executor plugin's job step removes every
SLURM_* variable, SLURM_CONF included, from the environment of the `srun` it starts inside a
job, so that srun only finds the configuration at its default path. A lock keeps two test
clusters on one host from taking turns at that path.

Needs root (slurmd starts jobs as any user) and Debian's ``slurm-wlm`` and ``munge`` packages;
``install()`` fetches them with apt when they are missing.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import apt_packages

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "main"
CPUS = 2
# Every training and extraction job asks for 4000 MB. SLURM refuses a job asking for more
# memory than a node has, and this node does not enforce memory (no cgroups), so a smaller
# host still advertises enough for two such jobs at once.
MIN_MEMORY_MB = 8000
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
LOCK = Path(tempfile.gettempdir()) / "prunesim-slurm-test.lock"


class ClusterUnavailable(RuntimeError):
    """This host cannot run the test cluster (the reason is the message)."""


def install() -> str | None:
    """Install the Debian packages if a command is missing; the reason it failed, else None."""
    return apt_packages.install(PACKAGES, (*DAEMONS, "sbatch", "squeue", "scancel"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


class SlurmCluster:
    """One node (this host) in one partition, ``PARTITION``; use as a context manager.

    ``env`` is the environment that SLURM commands (and snakemake) need to reach this
    cluster rather than any other: ``SLURM_CONF`` points at the folder's slurm.conf.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.node = socket.gethostname()
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.processes: dict[str, subprocess.Popen] = {}
        self._lock = None

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o755)  # munged: the socket's own folder must be open
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        r = self.root
        self.conf.write_text(
            f"""\
ClusterName=prunesim-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={r}/munge/munge.socket.2
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
# Independent of cgroups (not set up for SLURM here): track a job's processes by their
# parent ids, do not confine tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No accounting database, as on many small clusters: sacct cannot answer, squeue must,
# and it only sees a finished job for MinJobAge seconds (the executor plugin wants >= 120;
# an hour keeps every job of a test visible to the test).
AccountingStorageType=accounting_storage/none
MinJobAge=3600
SchedulerType=sched/backfill
# cons_tres: CPUs and memory are consumable, and jobs may ask for GPUs with --gpus.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# The node advertises the CPUs and memory written here, not what slurmd detects.
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={max(memory_mb(), MIN_MEMORY_MB)} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        )

    def claim_default_conf(self, timeout: float) -> None:
        """Take the host-wide lock, then point the default slurm.conf path at ours."""
        self._lock = open(LOCK, "w")  # held, and the lock with it, until stop()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"another test cluster holds {LOCK}") from None
                time.sleep(1)
        # Under the lock a symlink there is a stale one of an earlier test cluster; a file
        # is a real cluster's configuration, which this one must not replace.
        if DEFAULT_CONF.exists() and not DEFAULT_CONF.is_symlink():
            raise ClusterUnavailable(f"{DEFAULT_CONF} belongs to a SLURM set up on this host")
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.unlink(missing_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)

    def start(self, timeout: float = 60, lock_timeout: float = 1800) -> None:
        self.write_config()
        self.claim_default_conf(lock_timeout)
        munge = self.root / "munge"
        self._spawn(
            "munged",
            "munged",
            "--foreground",
            # munged refuses a socket in a folder that not every user can enter (pytest's
            # temporary folders are private); only root talks to this cluster.
            "--force",
            f"--socket={munge}/munge.socket.2",
            f"--key-file={munge}/munge.key",
            f"--pid-file={munge}/munged.pid",
            f"--seed-file={munge}/munged.seed",
            f"--log-file={self.root}/log/munged.log",
        )
        self._wait(lambda: (munge / "munge.socket.2").exists(), "munged's socket", timeout)
        self._spawn("slurmctld", "slurmctld", "-D", "-f", str(self.conf))
        self._wait(lambda: self.command("scontrol", "ping").returncode == 0, "slurmctld", timeout)
        self._spawn("slurmd", "slurmd", "-D", "-f", str(self.conf), "-N", self.node)
        self._wait(self.node_is_idle, f"node {self.node} to be idle", timeout)

    def _spawn(self, name: str, *cmd: str) -> None:
        with open(self.root / "log" / f"{name}.out", "w") as log:
            self.processes[name] = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {what}:\n{self.logs()}")
            time.sleep(0.2)

    def node_is_idle(self) -> bool:
        proc = self.command("sinfo", "--noheader", "--nodes", self.node, "--format=%t")
        return proc.returncode == 0 and proc.stdout.strip() == "idle"

    def command(self, *cmd: str) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller still knows (finished ones for MinJobAge seconds)."""
        fields = ("id", "state", "name", "comment")
        proc = self.command("squeue", "--states=all", "--noheader", "--format=%i|%T|%j|%k")
        return [
            dict(zip(fields, line.split("|"), strict=True)) for line in proc.stdout.splitlines()
        ]

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.root / "log").glob("*"))
        )

    def stop(self) -> None:
        """Cancel what still runs, then stop the daemons (last started first) by their ids."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.command("scancel", "--full", f"--partition={PARTITION}")
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()
        if self._lock is not None:
            if DEFAULT_CONF.is_symlink() and DEFAULT_CONF.readlink() == self.conf:
                DEFAULT_CONF.unlink()
            self._lock.close()  # releases the lock
            self._lock = None
