"""What the device runs for ``harness bench``'s sync: standard library only, Python 3.6+ syntax, one file.

The host sends this file's source as the ``python3 -c`` program of an ssh command (harness.fleet.sync.remote_command),
so nothing must be installed on the device first, and the bundle's own runner is not needed to copy the bundle.

    inventory ROOT   stdin: {"files": [{"path", "bytes", "sha256"}]}; stdout: one JSON object saying, per file, whether
                     the device holds it (same size and sha256) and how many bytes of it an interrupted copy left
                     (resumed from there), whether ROOT is a bundle folder, and whether the runner's venv exists.
    receive ROOT     stdin: per file a JSON header line {"path", "bytes", "sha256", "offset", "executable"} and the
                     file's bytes from offset; each is written to ROOT/.edgeprune-fleet/partial/<sha256>, checked
                     against its sha256 and only then renamed to its path, so a killed copy never leaves half a file
                     under a bundle name and the next copy resumes where it stopped. A last line {"end": true,
                     "keep": [...]} removes the partial copies left and files under models/, eval/ and wheels/ that the bundle no longer lists.

    supervise ROOT COMMAND...
                     runs COMMAND in ROOT (its output passes through) and ends it, with every process it started,
                     when stdin closes: ssh closes it when the connection is lost or harness bench is stopped, so an
                     orphaned install or bench never keeps running on the device (ssh without a terminal sends no
                     hangup); exits with COMMAND's code.

Exit codes: 0 done, 2 bad input (one sentence on stderr); supervise: COMMAND's.
"""

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading

FLEET_DIR = ".edgeprune-fleet"          # in ROOT: the fleet's own state (partial copies, the result)
PARTIAL_DIR = FLEET_DIR + "/partial"
INSTALL_RECORD = ".venv/edgeprune-install.json"
PRUNED_FOLDERS = ("models", "eval", "wheels")
BUNDLE_MARKS = ("manifest.json", FLEET_DIR)
CHUNK = 1 << 20


class Refused(Exception):
    pass


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def target_of(root, rel):
    """ROOT/rel, refused when rel leaves ROOT ('..', absolute, or a symbolic link out of it)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or rel.startswith("/") or ".." in rel.split("/"):
        raise Refused("the host asked for the path %r, which leaves the bundle folder" % (rel,))
    path = os.path.join(root, *rel.split("/"))
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real, real_root]) != real_root or real == real_root:
        raise Refused("%s leads out of the bundle folder through a symbolic link" % rel)
    return path


def root_state(root):
    if not os.path.lexists(root):
        return "new"
    if not os.path.isdir(root):
        return "not-a-folder"
    names = os.listdir(root)
    if not names:
        return "new"
    return "bundle" if any(n in names for n in BUNDLE_MARKS) else "foreign"


def inventory(root, request):
    files = []
    state = root_state(root)
    for f in request["files"]:
        path = target_of(root, f["path"]) if state == "bundle" else None
        have = False
        if path is not None and os.path.isfile(path) and os.path.getsize(path) == f["bytes"]:
            have = sha256_of(path) == f["sha256"]
        partial = os.path.join(root, PARTIAL_DIR, f["sha256"]) if state == "bundle" else None
        offset = 0
        if not have and partial is not None and os.path.isfile(partial) and os.path.getsize(partial) < f["bytes"]:
            offset = os.path.getsize(partial)
        files.append({"path": f["path"], "have": have, "offset": offset})
    return {"state": state, "files": files, "installed": os.path.isfile(os.path.join(root, INSTALL_RECORD)),
            "python": platform.python_version(), "machine": platform.machine()}


def _copy(stream, out, n):
    left = n
    while left:
        block = stream.read(min(CHUNK, left))
        if not block:
            raise Refused("the copy ended %d bytes early (connection lost?)" % left)
        out.write(block)
        left -= len(block)


def _prune(root, keep):
    removed = 0
    for folder in PRUNED_FOLDERS:
        top = os.path.join(root, folder)
        if os.path.islink(top) or not os.path.isdir(top):
            continue
        for here, dirs, names in os.walk(top):
            for name in names:
                path = os.path.join(here, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                if rel not in keep:
                    os.unlink(path)
                    removed += 1
    return removed


def receive(root, stream, report):
    state = root_state(root)
    if state not in ("new", "bundle"):
        raise Refused("%s is %s, so no bundle is copied into it" % (
            root, "a file" if state == "not-a-folder" else "a folder of other files (no manifest.json)"))
    partial_dir = os.path.join(root, PARTIAL_DIR)
    os.makedirs(partial_dir, exist_ok=True)
    received, failed = 0, []
    while True:
        line = stream.readline()
        if not line:
            raise Refused("the copy ended before its last line (connection lost?)")
        header = json.loads(line.decode("utf-8"))
        if header.get("end"):
            for name in os.listdir(partial_dir):    # every file arrived: what is left is a damaged copy's
                os.unlink(os.path.join(partial_dir, name))
            pruned = _prune(root, set(header.get("keep", [])))
            report({"end": True, "received": received, "failed": failed, "pruned": pruned})
            return
        target = target_of(root, header["path"])
        partial = os.path.join(partial_dir, header["sha256"])
        offset = header["offset"]
        have = os.path.getsize(partial) if os.path.isfile(partial) else 0
        if offset and have != offset:
            raise Refused("the partial copy of %s holds %d bytes, not the %d the host resumes from" % (
                header["path"], have, offset))
        with open(partial, "ab" if offset else "wb") as out:
            _copy(stream, out, header["bytes"] - offset)
            out.flush()
            os.fsync(out.fileno())
        if sha256_of(partial) != header["sha256"]:
            os.unlink(partial)
            failed.append(header["path"])
            report({"path": header["path"], "ok": False})
            continue
        os.makedirs(os.path.dirname(target) or root, exist_ok=True)
        target = target_of(root, header["path"])     # again: a folder on the way may be new
        os.chmod(partial, 0o755 if header.get("executable") else 0o644)
        os.replace(partial, target)
        received += 1
        report({"path": header["path"], "ok": True})


def supervise(root, command):
    child = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL, start_new_session=True)

    def watch():
        while os.read(0, 4096):       # the raw descriptor: a buffered reader's lock would stop the exit
            pass
        if child.poll() is None:          # stdin closed while COMMAND runs: the host is gone
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except OSError:
                pass

    threading.Thread(target=watch, daemon=True).start()
    code = child.wait()
    return code if code >= 0 else 128 - code


def main(argv):
    if len(argv) >= 3 and argv[0] == "supervise":
        try:
            return supervise(argv[1], argv[2:])
        except OSError as exc:
            sys.stderr.write("edgeprune on the device: could not run %s (%s)\n" % (argv[2], exc))
            return 127
    if len(argv) != 2 or argv[0] not in ("inventory", "receive"):
        sys.stderr.write("usage: inventory|receive ROOT, or supervise ROOT COMMAND...\n")
        return 2
    command, root = argv

    def report(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        if command == "inventory":
            report(inventory(root, json.loads(sys.stdin.buffer.read().decode("utf-8"))))
        else:
            receive(root, sys.stdin.buffer, report)
    except (Refused, OSError, ValueError, KeyError) as exc:
        sys.stderr.write("edgeprune sync on the device: %s\n" % (exc,))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
