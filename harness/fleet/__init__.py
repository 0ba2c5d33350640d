"""A fleet of edge devices benched from the workstation over SSH (``harness bench``).

* ``devices``: who the devices are (``ssh://`` addresses, a TOML devices file) and their bench options, checked
  before anything connects;
* ``ssh``: the system's OpenSSH client (keys, agent, ``~/.ssh/config`` and known hosts as the user has them), one
  multiplexed connection per device;
* ``device_side``: the standard-library program the device runs to list what it holds and to receive files;
* ``sync``: which of the bundle's files the device lacks (by sha256), and sending only those;
* ``run``: per device sync, install, bench and fetch, all devices in parallel, and the summary.
"""
