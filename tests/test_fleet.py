"""harness bench (harness/fleet): device addresses and the devices file, hostile input refused in one sentence, the
sha256 sync plan and its device side (run here through sh, as ssh would run it), and the whole fleet against a real
OpenSSH server on a free loopback port: two "devices" (two folders on this machine, one with --threads 2) benched by
one command and merged by harness report, a second run that sends nothing, a changed model that is all that is sent,
an unreachable device, an unknown host key, a failed install, and no secret in anything written or printed.

The server tests start /usr/sbin/sshd (Debian: apt-get install openssh-server) with a throwaway host key and a user
key made here, and skip with the reason when sshd, ssh or ssh-keygen are missing or sshd does not start. Nothing
leaves the machine: the devices run the runner with this interpreter (install = "skip"), so no registry is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from runner_fixtures import MLP, build_bundle, refresh_file_entry  # noqa: E402

from harness.fleet import sync  # noqa: E402
from harness.fleet.devices import DEFAULT_PATH, DeviceSpecError, fleet, parse_address, read_devices_file  # noqa: E402

SSHD = Path("/usr/sbin/sshd")
FAST = "--rounds 1 --min-seconds 0 --min-runs 5 --warmup 1 --no-aa-control --memory-isolation none"


def harness(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, env=env, timeout=timeout)


# ------------------------------------------------------------------------------------------- addresses and files
def test_addresses_name_user_port_and_folder() -> None:
    d = parse_address("ssh://pi@raspberrypi.local:2222/home/pi/eb")
    assert (d.name, d.user, d.host, d.port, d.path) == ("raspberrypi.local", "pi", "raspberrypi.local", 2222,
                                                        "/home/pi/eb")
    d = parse_address("ssh://Jetson-Alias")     # a ~/.ssh/config alias keeps its case; the folder is in the home
    assert (d.name, d.host, d.user, d.port, d.path) == ("Jetson-Alias", "Jetson-Alias", None, None, DEFAULT_PATH)
    d = parse_address("lab=ssh://mini/~/bundles/eb/")
    assert (d.name, d.path) == ("lab", "bundles/eb")
    d = parse_address("ssh://root@[::1]:2200/srv/eb")
    assert (d.name, d.host, d.port) == ("1", "::1", 2200)


@pytest.mark.parametrize("address,words", [
    ("ssh://-oProxyCommand=touch%20x/eb", "starts with '-', which ssh would read as an option"),
    ("ssh://host/eb\nrm -rf ~", "holds a control character"),
    ("a\nb=ssh://host/eb", "holds a control character"),
    ("../etc=ssh://host/eb", "is not usable as a results file name"),
    ("ssh://user:secret@host/eb", "never a password in an address"),
    ("ssh://-l@host/eb", "is not a login name"),
    ("ssh://host/~", "names the device's root or home folder itself"),
    ("ssh://host/~/-rf", "starts with '-'"),
    ("ssh://host:99999/eb", "cannot be read"),
    ("scp://host/eb", "is not of the form ssh://"),
    ("ssh://ho$t/eb", "is not a host name"),
])
def test_hostile_or_malformed_addresses_are_one_sentence(address: str, words: str) -> None:
    with pytest.raises(DeviceSpecError) as err:
        parse_address(address)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("address", ["ssh://user:secret@host/eb", "ssh://u:secret@host:99999/eb",
                                     "ssh://u:se@cret@host/eb\n", "x=ssh://u:secret@ho$t/eb"])
def test_an_address_with_a_password_never_repeats_it(address: str) -> None:
    with pytest.raises(DeviceSpecError) as err:
        parse_address(address)
    assert "secret" not in str(err.value) and "cret" not in str(err.value) and "***" in str(err.value)


def test_the_devices_file(tmp_path: Path) -> None:
    path = tmp_path / "devices.toml"
    path.write_text('[defaults]\nbench = "--rounds 3"\npython = "python3.11"\n'
                    '[devices.pi4]\naddress = "ssh://pi@raspberrypi.local/~/eb"\nbench = ["--threads", "4"]\n'
                    'install = "offline"\n'
                    '[devices.mini]\naddress = "ssh://mini"\n')
    pi4, mini = read_devices_file(path)
    assert (pi4.name, pi4.user, pi4.path, pi4.bench, pi4.install, pi4.python) == (
        "pi4", "pi", "eb", ("--rounds", "3", "--threads", "4"), "offline", "python3.11")
    assert (mini.name, mini.bench, mini.install) == ("mini", ("--rounds", "3"), "auto")
    # --bench-options go first, so a device's own options win (click keeps the last value of an option)
    both = fleet(["extra=ssh://host/x"], path, ("--min-seconds", "0.1"))
    assert [d.name for d in both] == ["pi4", "mini", "extra"]
    assert both[0].bench == ("--min-seconds", "0.1", "--rounds", "3", "--threads", "4")


@pytest.mark.parametrize("text,words", [
    ('[devices.a]\naddress = "ssh://h"\nthreads = 4\n', "has the key 'threads'"),
    ('[devices.a]\naddress = "ssh://h"\nbench = "--out /etc/passwd"\n', "--out, which harness bench sets itself"),
    ('[devices.a]\naddress = "ssh://h"\nbench = "--label=x"\n', "--label, which harness bench sets itself"),
    ('[devices.a]\naddress = "ssh://h"\ninstall = "maybe"\n', "is not one of auto, offline, registry, skip"),
    ('[devices.a]\naddress = "ssh://h"\npython = "-c"\n', "is not an interpreter name or path"),
    ('[devices."a b"]\naddress = "ssh://h"\n', "is not usable as a results file name"),
    ('[devices.a]\nbench = "--threads 2"\n', "has no address"),
    ('[defaults]\nbench = "x"\n', "lists no devices"),
    ('[device.a]\naddress = "ssh://h"\n', "has the table 'device'"),
    ('[devices.a\n', "is not valid TOML"),
])
def test_a_bad_devices_file_is_one_sentence(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "devices.toml"
    path.write_text(text)
    with pytest.raises(DeviceSpecError) as err:
        read_devices_file(path)
    assert words in str(err.value)


def test_two_devices_of_one_name_are_refused() -> None:
    with pytest.raises(DeviceSpecError, match="two devices are named 'host'"):
        fleet(["ssh://host/a", "ssh://host/b"], None)


def test_the_command_refuses_hostile_input_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    build_bundle(tmp_path / "bundle", with_runner=True)
    for args in (["--device", "ssh://-oProxyCommand=sh/x"], ["--device", "x\x1b[2J=ssh://h/x"],
                 ["--device", "ssh://h/x", "--bench-options", "--out /tmp/x"], []):
        proc = harness("bench", "--bundle", str(tmp_path / "bundle"), "--results", str(tmp_path / "r"), *args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "\x1b" not in proc.stderr
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------- the sync
def run_device_side(command: str, root: Path, stdin: bytes) -> subprocess.CompletedProcess:
    """device_side as ssh runs it: the remote command line through a POSIX shell."""
    return subprocess.run(["sh", "-c", sync.remote_program(command, str(root), sys.executable)], input=stdin,
                          capture_output=True, timeout=60)


def receive(bundle: Path, root: Path, sends, files) -> list[dict]:
    chunks: list[bytes] = []

    class Pipe:
        def write(self, data: bytes) -> None:
            chunks.append(bytes(data))

        def flush(self) -> None:
            pass

    sync.stream(bundle, sends, [f.path for f in files])(Pipe())
    proc = run_device_side("receive", root, b"".join(chunks))
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def inventory(root: Path, files) -> dict:
    proc = run_device_side("inventory", root, sync.inventory_request(files))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_sync_sends_what_is_missing_resumes_a_cut_off_copy_and_prunes_old_files(tmp_path: Path) -> None:
    bundle, device = tmp_path / "bundle", tmp_path / "device"
    build_bundle(bundle, with_runner=True)
    files = sync.bundle_files(bundle)
    assert files[-1].path == "manifest.json" and {"runner", "requirements.txt", "install.sh"} <= {f.path for f in files}
    held = inventory(device, files)
    assert held["state"] == "new" and not held["installed"]
    sends = sync.plan(files, held)
    assert len(sends) == len(files) and sync.needs_install(sends)
    answers = receive(bundle, device, sends, files)
    assert answers[-1] == {"end": True, "received": len(files), "failed": [], "pruned": 0}
    assert os.access(device / "runner", os.X_OK)
    assert sync.plan(files, inventory(device, files)) == []

    # a copy of toy-1 cut off half-way: the next plan resumes at its last byte, the file is whole afterwards
    model = next(f for f in files if f.path == "models/toy-1.onnx")
    (device / model.path).unlink()
    partial = device / ".edgeprune-fleet" / "partial" / model.sha256
    partial.write_bytes((bundle / model.path).read_bytes()[:model.bytes // 2])
    sends = sync.plan(files, inventory(device, files))
    assert sends == [sync.Send(model, model.bytes // 2)] and not sync.needs_install(sends)
    receive(bundle, device, sends, files)
    assert (device / model.path).read_bytes() == (bundle / model.path).read_bytes() and not partial.exists()

    # a model the bundle no longer lists is removed from the device; files outside models/, eval/, wheels/ stay
    (device / "models" / "old.onnx").write_bytes(b"x")
    (device / "notes.txt").write_text("mine")
    answers = receive(bundle, device, [], files)
    assert answers[-1]["pruned"] == 1 and not (device / "models" / "old.onnx").exists()
    assert (device / "notes.txt").exists()


def test_a_damaged_copy_never_takes_the_file_name_and_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    bundle, device = tmp_path / "bundle", tmp_path / "device"
    build_bundle(bundle, with_runner=True)
    files = sync.bundle_files(bundle)
    model = next(f for f in files if f.path == "models/toy-0.onnx")
    wrong = sync.BundleFile(model.path, model.bytes, "0" * 64)
    answers = receive(bundle, device, [sync.Send(wrong)], files)
    assert {"path": model.path, "ok": False} in answers and not (device / model.path).exists()

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("mine")
    assert inventory(tmp_path / "home", files)["state"] == "foreign"
    proc = run_device_side("receive", tmp_path / "home", b"")
    assert proc.returncode == 2 and b"a folder of other files" in proc.stderr
    # a path that leaves the folder is refused on the device too, whatever the host sends
    header = json.dumps({"path": "../escape", "bytes": 1, "sha256": "0" * 64, "offset": 0}).encode()
    proc = run_device_side("receive", device, header + b"\nx")
    assert proc.returncode == 2 and b"leaves the bundle folder" in proc.stderr
    assert not (tmp_path / "escape").exists()


def test_a_bundle_whose_file_does_not_match_its_manifest_is_not_sent(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    (bundle / "models" / "toy-0.onnx").write_bytes(b"damaged")
    proc = harness("bench", "--bundle", str(bundle), "--results", str(tmp_path / "r"), "--device", "ssh://h/x")
    assert proc.returncode == 2 and "does not match its sha256 in the manifest" in proc.stderr


# ------------------------------------------------------------------------------------------- a real sshd
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An OpenSSH server on a free loopback port for this user, with a throwaway host key, a user key made here, a
    known_hosts file for the host key and a client config (ssh -F) naming both; stopped after the module."""
    missing = [tool for tool in ("ssh", "ssh-keygen") if shutil.which(tool) is None]
    if not SSHD.exists() or missing:
        pytest.skip(f"needs OpenSSH's server and client ({SSHD} and {', '.join(missing) or 'ssh'}; Debian: "
                    f"apt-get install openssh-server)")
    home = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeprune-test", "-f",
                        str(home / key)], check=True, timeout=60)
    shutil.copy(home / "user_key.pub", home / "authorized_keys")
    port = free_port()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host_key'}\nPidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"AllowUsers {user}\nLogLevel ERROR\n")
    (home / "known_hosts").write_text(f"[127.0.0.1]:{port} "
                                      + " ".join((home / "host_key.pub").read_text().split()[:2]) + "\n")
    (home / "ssh_config").write_text(
        f"Host fleet-test\n  HostName 127.0.0.1\n  Port {port}\n"
        f"Host *\n  User {user}\n  IdentityFile {home / 'user_key'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {home / 'known_hosts'}\n  GlobalKnownHostsFile /dev/null\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)      # the server's privilege separation folder
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(home / "sshd_config")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while True:
        probe = subprocess.run(["ssh", "-F", str(home / "ssh_config"), "-o", "BatchMode=yes", "fleet-test", "true"],
                               capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            break
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip(f"sshd did not start here: {(server.stdout.read() if server.stdout else '')[-300:]} "
                        f"{probe.stderr.strip()[-300:]}")
        time.sleep(0.2)
    yield {"home": home, "port": port, "config": home / "ssh_config", "key": home / "user_key"}
    server.terminate()
    server.wait(timeout=30)


def devices_toml(path: Path, devices: dict[str, dict]) -> Path:
    lines = []
    for name, options in devices.items():
        lines.append(f"[devices.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def local_device(address: str, **extra) -> dict:
    # the runner runs under this interpreter, which has its requirements: nothing is installed from a registry
    return {"address": address, "install": "skip", "python": sys.executable, **extra}


def bench(sshd, tmp_path: Path, devices: dict[str, dict], bundle: Path) -> subprocess.CompletedProcess:
    path = devices_toml(tmp_path / "devices.toml", devices)
    return harness("bench", "--devices", str(path), "--bundle", str(bundle), "--results", str(tmp_path / "results"),
                   "--ssh-config", str(sshd["config"]), "--bench-options", FAST, "--connect-timeout", "20")


def summary_of(proc: subprocess.CompletedProcess, name: str) -> str:
    return next(line for line in proc.stdout.splitlines() if line.startswith(f"  {name}: "))


@pytest.fixture(scope="module")
def fleet_run(sshd, tmp_path_factory):
    """Two devices (two folders on this machine, b with --threads 2) benched twice with nothing changed, then once
    after one model changed."""
    tmp = tmp_path_factory.mktemp("fleet")
    bundle = tmp / "bundle"
    manifest = build_bundle(bundle, with_runner=True)
    devices = {"dev-a": local_device(f"ssh://fleet-test{tmp}/device-a"),
               "dev-b": local_device(f"ssh://fleet-test{tmp}/device-b", bench="--threads 2")}
    first = bench(sshd, tmp, devices, bundle)
    results = {p.name: json.loads(p.read_text()) for p in sorted((tmp / "results").glob("*.json"))}
    second = bench(sshd, tmp, devices, bundle)
    (bundle / "models" / "toy-1.onnx").write_bytes(MLP.random((8, 16, 4), seed=99).onnx_bytes())
    refresh_file_entry(bundle, manifest, "models/toy-1.onnx")
    third = bench(sshd, tmp, devices, bundle)
    report = harness("report", *sorted(str(p) for p in (tmp / "results").glob("*.json")), "--bundle", str(bundle),
                     "--out", str(tmp / "report"), "--pdf", "no")
    return {"tmp": tmp, "bundle": bundle, "first": first, "second": second, "third": third, "results": results,
            "report": report}


def test_two_devices_are_benched_by_one_command_and_reported_side_by_side(fleet_run) -> None:
    first = fleet_run["first"]
    assert first.returncode == 0, first.stdout + first.stderr
    assert "harness bench: 2 of 2 device(s) measured." in first.stdout
    results = fleet_run["results"]
    assert sorted(results) == ["dev-a.json", "dev-b.json"]
    assert results["dev-a.json"]["device"]["label"] == "dev-a" and results["dev-b.json"]["device"]["label"] == "dev-b"
    assert results["dev-a.json"]["settings"]["threads"] == 0 and results["dev-b.json"]["settings"]["threads"] == 2
    assert all(m["status"] == "ok" for r in results.values() for m in r["models"])
    n_files = len(sync.bundle_files(fleet_run["bundle"]))
    assert f"sent {n_files} file(s)" in summary_of(first, "dev-a") and "2 model file(s)" in summary_of(first, "dev-a")
    assert "[dev-b] bench: runner bench --rounds 1" in first.stderr    # progress per device
    report = fleet_run["report"]
    assert report.returncode == 0, report.stderr
    text = (fleet_run["tmp"] / "report" / "report.md").read_text()
    assert "dev-a (threads auto, batch 1)" in text and "dev-b (threads 2, batch 1)" in text


def test_a_second_run_sends_nothing_and_a_changed_model_is_all_that_is_sent(fleet_run) -> None:
    second, third = fleet_run["second"], fleet_run["third"]
    assert second.returncode == 0 and third.returncode == 0, second.stdout + third.stdout
    for name in ("dev-a", "dev-b"):
        assert "sent 0 file(s), 0 bytes, 0 model file(s)" in summary_of(second, name)
        assert "sent 2 file(s)" in summary_of(third, name) and "1 model file(s)" in summary_of(third, name)
    assert "[dev-a] sync: models/toy-1.onnx arrived" in third.stderr
    assert "[dev-a] sync: models/toy-0.onnx" not in third.stderr


def test_nothing_written_or_printed_holds_a_secret(fleet_run, sshd) -> None:
    key_lines = [ln for ln in sshd["key"].read_text().splitlines() if ln and not ln.startswith("-----")]
    assert key_lines
    tmp = fleet_run["tmp"]
    texts = [fleet_run[k].stdout + fleet_run[k].stderr for k in ("first", "second", "third", "report")]
    texts += [p.read_bytes().decode("utf-8", "replace") for folder in ("results", "report", "device-a", "device-b")
              for p in (tmp / folder).rglob("*") if p.is_file()]
    assert len(texts) > 10
    for line in key_lines:
        assert not any(line in text for text in texts)


def test_an_unreachable_device_is_one_sentence_and_the_others_are_measured(sshd, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    closed = free_port()
    proc = bench(sshd, tmp_path, {"up": local_device(f"ssh://fleet-test{tmp_path}/up"),
                                  "gone": local_device(f"ssh://127.0.0.1:{closed}/x")}, bundle)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "harness bench: 1 of 2 device(s) measured, 1 failed." in proc.stdout
    line = summary_of(proc, "gone")
    assert f"could not connect to ssh://127.0.0.1:{closed}/x (" in line and "Connection refused" in line
    assert line.count(". ") <= 1 and "Traceback" not in proc.stderr
    assert "error: 1 of 2 device(s) could not be measured (gone)" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["up.json"]


def test_an_unknown_host_key_a_failed_install_and_a_failed_bench_stop_only_their_device(sshd, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    strange = tmp_path / "ssh_config"      # "stranger": the same server, through a known_hosts without its key
    strange.write_text(f"Host stranger\n  HostName 127.0.0.1\n  Port {sshd['port']}\n  UserKnownHostsFile /dev/null\n"
                       + sshd["config"].read_text())
    path = devices_toml(tmp_path / "devices.toml", {
        "ok": local_device(f"ssh://fleet-test{tmp_path}/ok"),
        "stranger": local_device(f"ssh://stranger{tmp_path}/stranger"),
        "offline": {**local_device(f"ssh://fleet-test{tmp_path}/offline"), "install": "offline"},
        "badopt": local_device(f"ssh://fleet-test{tmp_path}/badopt", bench="--rounds 0"),
    })
    proc = harness("bench", "--devices", str(path), "--bundle", str(bundle), "--results", str(tmp_path / "results"),
                   "--ssh-config", str(strange), "--bench-options", FAST)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 of 4 device(s) measured, 3 failed." in proc.stdout
    assert "Host key verification failed." in summary_of(proc, "stranger")
    line = summary_of(proc, "offline")
    assert "the install failed (nothing was installed: --offline was given and there are no usable carried" in line
    assert "the bundle stays on the device, the next run installs again" in line
    assert "runner bench failed (" in summary_of(proc, "badopt") and "--rounds" in summary_of(proc, "badopt")
    assert not (tmp_path / "stranger").exists()
    assert (tmp_path / "offline" / "manifest.json").is_file()      # the copy stays for the next run
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["ok.json"]


def test_stopping_harness_bench_stops_the_bench_on_the_device(sshd, tmp_path: Path) -> None:
    """ssh without a terminal sends the remote command no hangup: device_side's supervisor ends the runner when the
    connection closes, so a killed harness bench leaves no benchmark running on the device."""
    import psutil

    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    path = devices_toml(tmp_path / "devices.toml", {"slow": local_device(f"ssh://fleet-test{tmp_path}/slow")})
    proc = subprocess.Popen([sys.executable, "-c", "from harness.cli import main; main()", "bench", "--devices",
                             str(path), "--bundle", str(bundle), "--results", str(tmp_path / "results"),
                             "--ssh-config", str(sshd["config"]), "--bench-options",
                             "--rounds 2 --min-seconds 30 --no-aa-control --memory-isolation none"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def device_runners() -> list:
        return [p for p in psutil.process_iter(["cmdline"])
                if "--label" in (p.info["cmdline"] or []) and "slow" in (p.info["cmdline"] or [])
                and p.pid != proc.pid]

    deadline = time.monotonic() + 60
    while not device_runners():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 20
    while device_runners() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert device_runners() == []
    assert not (tmp_path / "results" / "slow.json").exists()
