"""Who the devices are: ``ssh://[user@]host[:port][/path]`` addresses and a TOML devices file, checked before
anything connects.

Every name, host, user and path comes from the user and ends up in an ssh command line, a remote shell command or a
file name under ``build/results/``: each is checked here (one sentence, exit 2, for a hostile or malformed one) and
quoted with shlex.quote where it reaches the remote shell (harness.fleet.run).

Devices file (TOML)::

    [defaults]                      # optional, for every device
    bench = "--rounds 5 --min-seconds 0.1"
    [devices.pi4]
    address = "ssh://pi@raspberrypi.local/~/edgeprune-bundle"
    bench = "--threads 4"           # after the defaults, so it wins where both name an option
    install = "offline"             # auto (default), offline, registry or skip
    python = "python3"              # the device's interpreter for install and bench
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import unquote, urlsplit

from harness.errors import EdgepruneError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the same parser, packaged (pyproject names it for 3.10 only)
    import tomli as tomllib

# Where the bundle goes when the address names no path: a folder in the login's home, as the README's scp did.
DEFAULT_PATH = "edgeprune-bundle"
INSTALL_MODES = ("auto", "offline", "registry", "skip")
# `harness bench` sets these itself: the result goes where it fetches it from, labelled with the device's name.
RESERVED_OPTIONS = ("--out", "--label")
DEVICE_KEYS = ("address", "bench", "install", "python")

# A device name is a file name (build/results/NAME.json) and a report label: letters, digits, '.', '_', '-'.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$")


# user:password@ in a URL; the password is what no message may repeat (greedy up to the last '@' of the authority).
_URL_PASSWORD = re.compile(r"(://[^/?#:@]*):[^/?#]*@")


def without_password(text: str) -> str:
    """`text` with the password of any URL in it replaced by ***: an error must not copy a secret into a log."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


class DeviceSpecError(EdgepruneError):
    """A device address, name or option that cannot be used; one sentence, exit 2. Any URL password in the sentence
    is shown as ***."""

    def __init__(self, message: str) -> None:
        super().__init__(without_password(message))


@dataclass(frozen=True)
class Device:
    name: str                         # results file name and report label
    host: str                         # as ssh takes it: a name, an address or a ~/.ssh/config alias
    user: str | None = None
    port: int | None = None
    path: str = DEFAULT_PATH          # the bundle folder on the device; relative: under the login's home
    bench: tuple[str, ...] = ()       # runner bench options
    install: str = "auto"
    python: str = "python3"
    address: str = field(default="", compare=False)   # as the user wrote it, for messages

    def describe(self) -> str:
        return self.address or f"ssh://{self.host}/{self.path}"


def _printable(text: str, what: str) -> None:
    if not text.isprintable():
        raise DeviceSpecError(f"{what} {text!r} holds a control character (a newline, tab or escape), which no "
                              f"device address or option may hold.")


def check_name(name: str) -> str:
    _printable(name, "the device name")
    if not _NAME.match(name):
        raise DeviceSpecError(f"the device name {name!r} is not usable as a results file name and report label: use "
                              f"1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def _check_host(host: str, address: str) -> str:
    if host.startswith("-"):
        raise DeviceSpecError(f"the host of {address!r} starts with '-', which ssh would read as an option.")
    if not (_HOST.match(host) or _IPV6.match(host)):
        raise DeviceSpecError(f"the host {host!r} of {address!r} is not a host name, address or ssh alias (letters, "
                              f"digits, '.', '_' and '-').")
    return host


def _check_path(path: str, address: str) -> str:
    _printable(path, f"the path of {address!r}")
    if "\x00" in path:
        raise DeviceSpecError(f"the path of {address!r} holds a NUL character.")
    if path.startswith("~/"):
        path = path[2:]                # relative paths are under the login's home folder
    path = path.rstrip("/") or "/"
    if path.startswith("-"):
        raise DeviceSpecError(f"the path of {address!r} starts with '-', which a command on the device would read "
                              f"as an option.")
    if path in ("/", "~", ".", ""):
        raise DeviceSpecError(f"{address!r} names the device's root or home folder itself; name a folder for the "
                              f"bundle, e.g. ssh://host/~/{DEFAULT_PATH}.")
    return path


def name_from_host(host: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", host).strip("-.") or "device"
    return name[:64]


def parse_address(address: str, name: str | None = None, **options: Any) -> Device:
    """``ssh://[user@]host[:port][/path]`` (``/~/path``: under the home folder) as a Device; optionally
    ``NAME=ssh://...``. Raises DeviceSpecError with one sentence."""
    _printable(address, "the device address")
    if name is None and "=" in address.split("://", 1)[0]:
        name, address = address.split("=", 1)
    if not address.startswith("ssh://"):
        raise DeviceSpecError(f"the device address {address!r} is not of the form ssh://[user@]host[:port][/path] "
                              f"(a ~/.ssh/config alias works as host).")
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise DeviceSpecError(f"the device address {address!r} cannot be read ({exc}).") from None
    if parts.query or parts.fragment or parts.password is not None:
        raise DeviceSpecError(f"the device address {address!r} holds a password, query or fragment; ssh keys, the "
                              f"agent and ~/.ssh/config authenticate, never a password in an address.")
    host = parts.hostname or ""
    if not host:
        raise DeviceSpecError(f"the device address {address!r} names no host.")
    # urlsplit lowercases the host; an ~/.ssh/config alias is matched as written
    netloc_host = parts.netloc.rsplit("@", 1)[-1]
    if netloc_host.startswith("["):
        host = netloc_host[1:netloc_host.index("]")]
    else:
        host = netloc_host.split(":", 1)[0]
    _check_host(host, address)
    user = unquote(parts.username) if parts.username else None
    if user is not None and not _USER.match(user):
        raise DeviceSpecError(f"the user {user!r} of {address!r} is not a login name (letters, digits, '.', '_' and "
                              f"'-', not starting with '-').")
    if port is not None and not 0 < port < 65536:
        raise DeviceSpecError(f"the port of {address!r} is not between 1 and 65535.")
    path = unquote(parts.path) if parts.path not in ("", "/") else DEFAULT_PATH
    if path == "/~" or path.startswith("/~/"):
        path = path[1:]             # ssh://host/~/folder: under the home folder
    device = Device(name=check_name(name if name is not None else name_from_host(host)), host=host, user=user,
                    port=port, path=_check_path(path, address), address=address)
    return with_options(device, options, address)


def bench_options(value: Any, where: str) -> tuple[str, ...]:
    """runner bench options from a string ("--threads 4", split as a shell would) or a list of strings."""
    if isinstance(value, str):
        try:
            args = shlex.split(value)
        except ValueError as exc:
            raise DeviceSpecError(f"the bench options of {where} cannot be split ({exc}).") from None
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        args = list(value)
    else:
        raise DeviceSpecError(f"the bench options of {where} are neither a string nor a list of strings.")
    for arg in args:
        _printable(arg, f"the bench option of {where}")
        if arg.split("=", 1)[0] in RESERVED_OPTIONS:
            raise DeviceSpecError(f"the bench options of {where} give {arg.split('=', 1)[0]}, which harness bench "
                                  f"sets itself (the result is fetched into --results, labelled with the device "
                                  f"name).")
    return tuple(args)


def with_options(device: Device, options: Mapping[str, Any], where: str) -> Device:
    """The device with bench options (appended), install mode and interpreter from ``options``."""
    unknown = sorted(set(options) - set(DEVICE_KEYS) - {"name"})
    if unknown:
        raise DeviceSpecError(f"{where} has the key {unknown[0]!r}; a device takes {', '.join(DEVICE_KEYS)}.")
    bench = device.bench + (bench_options(options["bench"], where) if options.get("bench") is not None else ())
    install = options.get("install", device.install)
    if install not in INSTALL_MODES:
        raise DeviceSpecError(f"the install mode {install!r} of {where} is not one of {', '.join(INSTALL_MODES)}.")
    python = options.get("python", device.python)
    if not isinstance(python, str) or not python or python.startswith("-"):
        raise DeviceSpecError(f"the python of {where} is not an interpreter name or path.")
    _printable(python, f"the python of {where}")
    return Device(device.name, device.host, device.user, device.port, device.path, bench, install, python,
                  device.address)


def read_devices_file(path: Path) -> list[Device]:
    """The devices of a TOML file ([defaults] and [devices.NAME] tables); DeviceSpecError with one sentence."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceSpecError(f"the devices file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceSpecError(f"the devices file {path} cannot be read ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeviceSpecError(f"the devices file {path} is not valid TOML ({exc}).") from None
    extra = sorted(set(data) - {"defaults", "devices"})
    if extra:
        raise DeviceSpecError(f"the devices file {path} has the table {extra[0]!r}; it takes [defaults] and "
                              f"[devices.NAME].")
    defaults, devices = data.get("defaults", {}), data.get("devices", {})
    if not isinstance(defaults, dict) or not isinstance(devices, dict) or not devices or \
            not all(isinstance(d, dict) for d in devices.values()):
        raise DeviceSpecError(f"the devices file {path} lists no devices; add a [devices.NAME] table with an "
                              f"address = \"ssh://...\" for each.")
    if "address" in defaults:
        raise DeviceSpecError(f"the [defaults] of {path} give an address; each device gives its own.")
    found = []
    for name, table in devices.items():
        where = f"device {name!r} in {path}"
        check_name(name)
        address = table.get("address")
        if not isinstance(address, str):
            raise DeviceSpecError(f"{where} has no address = \"ssh://[user@]host[:port][/path]\".")
        device = parse_address(address, name=name)
        device = with_options(device, {k: v for k, v in defaults.items()}, f"the [defaults] of {path}")
        found.append(with_options(device, {k: v for k, v in table.items() if k != "address"}, where))
    return found


def fleet(addresses: Sequence[str], devices_file: Path | None, common_bench: Sequence[str] = ()) -> list[Device]:
    """Every device of --device and --devices, each name once, with the common bench options first."""
    found = read_devices_file(devices_file) if devices_file is not None else []
    found += [parse_address(a) for a in addresses]
    if not found:
        raise DeviceSpecError("no device named: give --device ssh://[user@]host[:port][/path] or --devices FILE.")
    seen: dict[str, Device] = {}
    for device in found:
        if device.name in seen:
            raise DeviceSpecError(f"two devices are named {device.name!r} ({seen[device.name].describe()} and "
                                  f"{device.describe()}); give one a name with NAME=ssh://... or in a devices file.")
        seen[device.name] = device
    common = tuple(common_bench)
    return [Device(d.name, d.host, d.user, d.port, d.path, common + d.bench, d.install, d.python, d.address)
            for d in found]
