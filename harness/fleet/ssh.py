"""The system's OpenSSH client, as the user has it set up: keys, agent, ``~/.ssh/config`` aliases and known hosts.

Every call runs ``ssh -o BatchMode=yes``: a key or the agent authenticates, or the call fails with ssh's own
sentence; it never asks for a password, and no password ever reaches a command line or a file. Host keys are
checked as the user's OpenSSH checks them (StrictHostKeyChecking is left alone: an unknown host fails with "Host key
verification failed." instead of being trusted). ``--ssh-config FILE`` becomes ``ssh -F FILE``.

One connection per device (a ControlMaster in a private 0700 folder, one socket per device, so two devices on one
host never share it): the sync, install, bench and fetch run over it without new handshakes. The master exits when
the fleet is done, or by itself after ``ControlPersist`` idle seconds if this process is killed.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Sequence

from harness.fleet.devices import Device

SSH = "ssh"
EXIT_SSH_FAILED = 255          # what ssh exits with when the connection failed (else: the remote command's code)
IDLE_SECONDS = 60              # an orphaned master (this process killed) exits after this long without clients

Feed = Callable[[IO[bytes]], None]
LineSink = Callable[[str], None]


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: list[str] = field(default_factory=list)

    def last_line(self) -> str:
        """ssh's or the remote command's last words: the one line a failure sentence quotes."""
        lines = [ln.strip() for ln in self.stderr if ln.strip() and not ln.startswith("Warning: Permanently added")]
        errors = [ln for ln in lines if "error" in ln.lower() or "ERROR" in ln]
        return (errors or lines or [f"exit code {self.returncode}, no message"])[-1]


@dataclass
class Ssh:
    device: Device
    control_socket: Path
    config: Path | None = None
    connect_timeout: int = 10

    def _options(self) -> list[str]:
        args = [SSH, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-o", f"ControlPath={self.control_socket}"]
        if self.config is not None:
            args += ["-F", str(self.config)]
        if self.device.port is not None:
            args += ["-p", str(self.device.port)]
        if self.device.user is not None:
            args += ["-l", self.device.user]
        return args

    def argv(self, remote_command: str) -> list[str]:
        """ssh ... -- HOST REMOTE_COMMAND (the host was checked not to be an option; '--' says so to ssh too)."""
        return [*self._options(), "-o", "ControlMaster=no", "--", self.device.host, remote_command]

    def connect(self) -> Completed:
        """Open the device's master connection (authentication and the host key check happen here)."""
        # not `-N -f`: a master without a session of its own refuses its clients' sessions (OpenSSH 9.2)
        return run([*self._options(), "-o", "ControlMaster=yes", "-o", f"ControlPersist={IDLE_SECONDS}",
                    "--", self.device.host, "true"])

    def close(self) -> None:
        if self.control_socket.exists():
            run([*self._options(), "-O", "exit", "--", self.device.host])

    def run(self, remote_command: str, feed: Feed | bytes | None = None, on_stderr: LineSink | None = None,
            on_stdout: LineSink | None = None, hold_stdin: bool = False) -> Completed:
        return run(self.argv(remote_command), feed, on_stderr, on_stdout, hold_stdin)


def _drain(stream: IO[bytes], keep: list, lines: LineSink | None, text: bool) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        keep.append(line if text else raw)
        if lines is not None:
            lines(line)


def run(argv: Sequence[str], feed: Feed | bytes | None = None, on_stderr: LineSink | None = None,
        on_stdout: LineSink | None = None, hold_stdin: bool = False) -> Completed:
    """Run ``argv``; ``feed`` writes its stdin (bytes, or a function given the pipe) while stdout and stderr are read
    in threads, so neither side waits on a full pipe. A remote side that stops reading ends the feed quietly: its
    exit code and last line say why. ``hold_stdin`` keeps stdin open, unwritten, until the process ends: the remote
    side (device_side ``supervise``) takes its closing for this process being gone."""
    piped = feed is not None or hold_stdin
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: list[bytes] = []
    err: list[str] = []
    readers = [threading.Thread(target=_drain, args=(proc.stdout, out, on_stdout, False), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, err, on_stderr, True), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        if feed is not None:
            assert proc.stdin is not None
            try:
                if isinstance(feed, bytes):
                    proc.stdin.write(feed)
                else:
                    feed(proc.stdin)
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
        proc.wait()
        if hold_stdin and proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    for reader in readers:
        reader.join()
    return Completed(proc.returncode, b"".join(out), err)
