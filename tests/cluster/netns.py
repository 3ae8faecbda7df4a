"""Separate hosts on one machine: Linux network namespaces joined by a bridge, addresses from 198.18.0.0/15.

Every name carries this process's pid, so a crashed earlier run cannot collide; `clean_stale` removes the
namespaces, processes and links of runs whose pid is gone. The bridge has no address in the root namespace
and no namespace has a default route: traffic stays between the namespaces, never leaves the machine."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

PREFIX = "amfx"  # ours: namespaces amfx-<role>-<pid>, bridge amfxbr<pid>, host-side veths amfx<r><pid>
NET = "198.18.0"  # /24 inside 198.18.0.0/15 (RFC 2544 benchmark range)
ROLES = {"sched": 1, "gen1": 2, "gen2": 3, "target": 4}
STOP_WAIT_S = 5.0
IP = shutil.which("ip") or "/usr/sbin/ip"  # absolute: the hosts' environments have no sbin on PATH
NAME = re.compile(rf"^{PREFIX}-(?:{'|'.join(ROLES)})-(\d+)$")
LINK = re.compile(rf"^{PREFIX}(?:br|[sgbt])(\d+)(?:@\S+)?$")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check, timeout=30)


def why_not_available() -> str | None:
    """None where namespaces can be made here, else the one-line reason to skip."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); run make cluster-test as root"
    probe = f"{PREFIX}-probe-{os.getpid()}"
    try:
        made = ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "the ip command (iproute2) is not installed"
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip().splitlines()[-1:]}"
    ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ns_pids(namespace: str) -> list[int]:
    done = ip("netns", "pids", namespace, check=False)
    return [int(p) for p in done.stdout.split()]


def clean_stale() -> list[str]:
    """Remove our namespaces (their processes first, by pid) and links left by runs whose pid is gone."""
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAME.match(name)
        if match and not _alive(int(match.group(1))):
            for pid in ns_pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        match = LINK.match(parts[1].strip()) if len(parts) > 1 else None
        if match and not _alive(int(match.group(1))):
            ip("link", "del", parts[1].strip().split("@")[0], check=False)
            removed.append(parts[1].strip())
    return removed


@dataclass
class Topology:
    """The four hosts: namespace name and address per role; processes started here, stopped by pid."""

    tag: str = field(default_factory=lambda: str(os.getpid()))
    procs: list[subprocess.Popen] = field(default_factory=list)
    made: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{PREFIX}-{role}-{self.tag}"

    def addr(self, role: str) -> str:
        return f"{NET}.{ROLES[role]}"

    def veth(self, role: str) -> str:
        return f"{PREFIX}{role[0] if role != 'gen2' else 'b'}{self.tag}"  # s, g(en1)->g, b(gen2), t

    @property
    def bridge(self) -> str:
        return f"{PREFIX}br{self.tag}"

    def build(self) -> None:
        ip("link", "add", "name", self.bridge, "type", "bridge")
        self.made.append("bridge")
        ip("link", "set", self.bridge, "up")
        for role in ROLES:
            ns, veth = self.ns(role), self.veth(role)
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", veth, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.addr(role)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def cmd(self, role: str, argv: list[str]) -> list[str]:
        return [IP, "netns", "exec", self.ns(role), *argv]

    def spawn(self, role: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """A process inside a host, recorded so teardown stops it by pid."""
        proc = subprocess.Popen(self.cmd(role, argv), start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, role: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("timeout", 60)
        return subprocess.run(self.cmd(role, argv), capture_output=True, text=True, **kwargs)

    def link(self, role: str, state: str) -> None:
        ip("link", "set", self.veth(role), state)

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM by pid, SIGKILL after STOP_WAIT_S; then any process still inside our hosts, by pid."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(STOP_WAIT_S)

    def destroy(self) -> list[str]:
        """Every process we started, then whatever still runs in our namespaces, then the namespaces and
        the bridge. Returns what had to be killed beyond our own processes (for the test to report)."""
        for proc in reversed(self.procs):
            self.stop(proc)
        leftovers = []
        for role in ROLES:
            if self.ns(role) not in self.made:
                continue
            for pid in ns_pids(self.ns(role)):
                leftovers.append(f"{role}:{pid}")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_WAIT_S
        for role in ROLES:
            ip("link", "del", self.veth(role), check=False)  # the pair goes at once, whatever holds the ns
            if self.ns(role) in self.made:
                while ns_pids(self.ns(role)) and time.monotonic() < deadline:
                    time.sleep(0.05)  # nothing to wait on for another process's exit: poll /proc
                ip("netns", "del", self.ns(role), check=False)
        if "bridge" in self.made:
            ip("link", "del", self.bridge, check=False)
        self.made.clear()
        return leftovers

    def exists(self) -> list[str]:
        names = ip("netns", "list", check=False).stdout
        links = ip("-o", "link", "show", check=False).stdout
        ours = [self.bridge, *(self.veth(r) for r in ROLES)]
        return [self.ns(r) for r in ROLES if self.ns(r) in names] + [
            n for n in ours if re.search(rf" {n}[:@]", links)
        ]
