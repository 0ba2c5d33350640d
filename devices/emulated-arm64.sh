#!/usr/bin/env bash
# A second architecture for real, on an x86-64 workstation: an arm64 Debian root run under qemu-aarch64 (user-mode
# emulation), the runner installed offline from the bundle's aarch64 wheels, `runner bench` run there with no
# network, and the result copied back beside the workstation's results.
#
#   sudo devices/emulated-arm64.sh BUNDLE RESULT.json            (make emulated-arm64 runs it on build/bundle)
#   sudo devices/emulated-arm64.sh --exec COMMAND...             (a command in the prepared root, mounts and all)
#
# Needs root (debootstrap, chroot, mounts) and Debian's qemu-user-static, debootstrap and binfmt-support packages
# (installed with apt-get when missing). Variables: ROOTFS (the arm64 root, built once and reused; about 300 MB and
# 4 minutes), SUITE (bookworm), MIRROR (default: the first Debian mirror in this machine's apt sources), LABEL,
# QEMU_CPU (default cortex-a72, the Raspberry Pi 4's core), BENCH_ARGS (default: one thread without spinning and a
# short timing window: the timings of an emulated CPU are functional only, never the device's).
#
# Why a fake /proc/cpuinfo: qemu-user shows the host's x86 /proc/cpuinfo to the arm64 process, and onnxruntime's
# cpuinfo library segfaults at import on it; the root gets one describing the CPU qemu emulates (a Cortex-A72 and its
# features). The runner still records the CPU as emulated, from the kernel's /sys/devices/system/cpu/modalias, which
# the fake does not touch.
set -euo pipefail

usage() { echo "usage: $0 BUNDLE RESULT.json | $0 --exec COMMAND..." >&2; exit 2; }
say() { echo "emulated-arm64: $*" >&2; }
die() { say "$*"; exit "${2:-1}"; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${SUITE:-bookworm}
ROOTFS=$(realpath -m "${ROOTFS:-$REPO/build/device-roots/debian-$SUITE-arm64}")
export QEMU_CPU=${QEMU_CPU:-cortex-a72}
LABEL=${LABEL:-qemu-aarch64 $QEMU_CPU (emulated on $(hostname))}
BENCH_ARGS=${BENCH_ARGS:---threads 1 --no-spinning --min-runs 10 --min-seconds 0 --warmup 1}
HOST_PYTHON=${HOST_PYTHON:-$REPO/.venv/bin/python}
EXEC=0
if [ "${1:-}" = "--exec" ]; then
  EXEC=1; shift; [ $# -ge 1 ] || usage
else
  [ $# -eq 2 ] || usage
  BUNDLE=$(realpath "$1")
  OUT=$(realpath -m "$2")
  [ -f "$BUNDLE/manifest.json" ] || die "$BUNDLE is not a bundle (no manifest.json); run make export first." 2
  [ -d "$(dirname "$OUT")" ] || die "the folder of $OUT does not exist." 2
fi
[ "$(id -u)" = 0 ] || die "needs root for debootstrap, chroot and mounts; run it with sudo." 2

# 1. Tools: Debian's packages (the only registry this needs besides PyPI for the wheels).
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v update-binfmts >/dev/null; then
  say "installing qemu-user-static, debootstrap and binfmt-support with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap binfmt-support
fi

# 2. The kernel runs aarch64 programs through qemu (binfmt_misc; the F flag opens qemu once, so it works in a chroot).
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc, so the kernel cannot run arm64 programs here."
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || die "binfmt_misc has no enabled qemu-aarch64 entry (update-binfmts --enable qemu-aarch64 failed)."

# 3. The arm64 root, built once.
if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
  MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}
  MIRROR=${MIRROR:-$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
  [ -n "$MIRROR" ] || die "no Debian mirror in /etc/apt sources; set MIRROR=<url>."
  say "building the arm64 Debian $SUITE root in $ROOTFS (python3 only, no python3-venv, no pip)"
  rm -rf "$ROOTFS.partial"
  mkdir -p "$(dirname "$ROOTFS")"
  debootstrap --arch=arm64 --variant=minbase --include=python3 "$SUITE" "$ROOTFS.partial" "$MIRROR" >&2
  mv "$ROOTFS.partial" "$ROOTFS"
fi
MOUNTED=()
cleanup() { for ((i=${#MOUNTED[@]}-1; i>=0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
mount -t proc proc "$ROOTFS/proc" && MOUNTED+=("$ROOTFS/proc")
mount --rbind /sys "$ROOTFS/sys" && mount --make-rslave "$ROOTFS/sys" && MOUNTED+=("$ROOTFS/sys")
mount --bind /dev "$ROOTFS/dev" && MOUNTED+=("$ROOTFS/dev")
FAKE="$ROOTFS/run/edgeprune-cpuinfo"
mkdir -p "$ROOTFS/run"
: > "$FAKE"
case "$QEMU_CPU" in   # what Linux would show for the core qemu emulates (its MIDR part and hwcaps)
  cortex-a72) IMPL=0x41; PART=0xd08; FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
  cortex-a53) IMPL=0x41; PART=0xd03; FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
  cortex-a76) IMPL=0x41; PART=0xd0b; FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  max) IMPL=0x00; PART=0x000; FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp sve i8mm bf16" ;;
  *) die "QEMU_CPU=$QEMU_CPU: choose cortex-a72, cortex-a53, cortex-a76 or max." 2 ;;
esac
for ((cpu=0; cpu<$(nproc); cpu++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 100.00\nFeatures\t: %s\nCPU implementer\t: %s\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 0\n\n' "$cpu" "$FEATURES" "$IMPL" "$PART" >> "$FAKE"
done
mount --bind "$FAKE" "$ROOTFS/proc/cpuinfo" && MOUNTED+=("$ROOTFS/proc/cpuinfo")
in_root() { unshare --net chroot "$ROOTFS" /usr/bin/env -i QEMU_CPU="$QEMU_CPU" HOME=/root \
             PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
if [ "$EXEC" = 1 ]; then
  in_root "$@"
  exit $?
fi

# 4. The bundle's aarch64 wheels for the root's Python (added to the bundle when missing; cached downloads).
PYVER=$(in_root /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
TARGET="linux_aarch64-cp${PYVER/./}"
if ! grep -q "\"$TARGET\"" "$BUNDLE/wheels/index.json" 2>/dev/null; then
  say "adding the $TARGET wheels to $BUNDLE"
  "$HOST_PYTHON" -m exporters.wheels "$BUNDLE" --platform linux_aarch64 --python "$PYVER" >&2
fi

# 5. The bundle inside the root, fresh (an earlier venv is dropped).
DEST=/root/edgeprune-bundle
rm -rf "${ROOTFS:?}$DEST"
mkdir -p "$ROOTFS$DEST"
tar -C "$BUNDLE" --exclude=./.venv -cf - . | tar -C "$ROOTFS$DEST" -xf -

# 6. Install offline and bench, in a network namespace without interfaces: offline is proven, not assumed.
say "installing the runner in the arm64 root from the carried wheels, with no network"
in_root /usr/bin/python3 "$DEST/runner" install --offline
say "benching under qemu-aarch64 -cpu $QEMU_CPU (timings are functional only)"
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
in_root /usr/bin/python3 "$DEST/runner" bench "$DEST" --out /root/result-arm64.json --label "$LABEL" $BENCH_ARGS
cp "$ROOTFS/root/result-arm64.json" "$OUT"
say "wrote $OUT"
