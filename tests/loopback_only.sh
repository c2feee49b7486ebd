#!/usr/bin/env bash
# Run a command (the test suite) in a network namespace that has nothing but loopback, so no packet
# can leave this machine from any process the tests start: TCP, UDP and DNS alike. Root needs only
# a network namespace; other users get a user namespace too and keep their own uid inside it.
set -euo pipefail
if [[ "${PROMPTYARD_TEST_NETNS:-}" == 1 ]]; then exec "$@"; fi  # already inside

isolate() {
  if [[ "$(id -u)" == 0 ]]; then
    unshare --net bash -c 'ip link set lo up && exec "$@"' bash "$@"
  else
    unshare --map-root-user --net bash -c \
      "ip link set lo up && exec unshare --map-user=$(id -u) --map-group=$(id -g) \"\$@\"" bash "$@"
  fi
}

if command -v unshare >/dev/null && command -v ip >/dev/null && PROMPTYARD_TEST_NETNS=1 isolate true 2>/dev/null; then
  PROMPTYARD_TEST_NETNS=1 isolate "$@"
  exit $?
fi
echo "tests/loopback_only.sh: cannot cut the network off here (needs unshare from util-linux, ip from" >&2
echo "iproute2 and permission for network namespaces); set PROMPTYARD_TEST_NETWORK=open to run with" >&2
echo "the in-process guard only." >&2
if [[ "${PROMPTYARD_TEST_NETWORK:-}" == open ]]; then exec "$@"; fi
exit 2
