#!/usr/bin/env bash
# Run the DM8 tests against a real DM8 server in a container, for users who have Dameng's Docker image.
#
# The image is not public: download it from https://eco.dameng.com/download/ and load it once, e.g.
#   docker load -i dm8_20241022_x86_rh6_64_single.tar
# Then:
#   scripts/dm8-test.sh                 # the DM8 tests (pytest -k dm), on 8 KB pages, CASE_SENSITIVE=Y then =N
#   scripts/dm8-test.sh tests/db -x     # other pytest arguments replace "-k dm tests"
#
# Settings (environment):
#   DM8_IMAGE     the loaded image (default dm8_single:dm8_20241022_rev244896_x86_rh6_64)
#   DM8_VARIANTS  which servers to run on, in order (default "sensitive insensitive")
#   DM8_PAGE_SIZE page size in KB, as dminit takes it (default 8, DM8's own default)
#   DM8_PORT      the host port (127.0.0.1 only) the server is published on (default 15236)
#   DM8_PASSWORD  SYSDBA's password, given to the image as SYSDBA_PWD (default Dmsys_123)
#   DM8_KEEP=1    leave the containers running afterwards
#   DOCKER        the container CLI (default docker; podman works too)
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
IMAGE=${DM8_IMAGE:-dm8_single:dm8_20241022_rev244896_x86_rh6_64}
VARIANTS=${DM8_VARIANTS:-sensitive insensitive}
PAGE_SIZE=${DM8_PAGE_SIZE:-8}
PORT=${DM8_PORT:-15236}
PASSWORD=${DM8_PASSWORD:-Dmsys_123}
PYTHON=${DM8_PYTHON:-.venv/bin/python}
if [ "$#" -eq 0 ]; then set -- -k dm tests; fi

if ! "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "error: the DM8 image $IMAGE is not loaded; download it from https://eco.dameng.com/download/," >&2
  echo "       'docker load -i <file>.tar' it, and set DM8_IMAGE if its tag differs" >&2
  exit 2
fi
[ -x "$PYTHON" ] || bash scripts/setup.sh

started=()
cleanup() {
  if [ "${DM8_KEEP:-0}" != 1 ]; then
    for name in "${started[@]}"; do "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true; done
  fi
}
trap cleanup EXIT

wait_for_dm8() {  # port, expected CASE_SENSITIVE: a real login, then the server's page size and case mode
  local rc
  for _ in $(seq 1 180); do
    rc=0
    "$PYTHON" - "$1" "$PASSWORD" "$2" "$PAGE_SIZE" <<'EOF' 2>/dev/null || rc=$?
import sys, dmPython
conn = dmPython.connect(user="SYSDBA", password=sys.argv[2], server="127.0.0.1", port=int(sys.argv[1]),
                        login_timeout=5, lang_id=1)
cursor = conn.cursor()
cursor.execute("SELECT PAGE(), SF_GET_CASE_SENSITIVE_FLAG()")
page, case = cursor.fetchone()
mode = "Y" if case else "N"
print(f"DM8 is up: {page // 1024} KB pages, CASE_SENSITIVE={mode}")
sys.exit(0 if (mode, page) == (sys.argv[3], int(sys.argv[4]) * 1024) else 3)
EOF
    if [ "$rc" -eq 0 ]; then return 0; fi
    if [ "$rc" -eq 3 ]; then
      echo "error: the container did not create the database as asked (PAGE_SIZE, CASE_SENSITIVE): check" >&2
      echo "       which dminit settings your image's startup script reads" >&2
      return 1
    fi
    sleep 2
  done
  echo "error: DM8 did not accept a login as SYSDBA within 6 minutes; see '$DOCKER logs' (an image that ignores" >&2
  echo "       SYSDBA_PWD keeps its own default password: set DM8_PASSWORD to it)" >&2
  return 1
}

status=0
for variant in $VARIANTS; do
  case $variant in
    sensitive) case_sensitive=Y ;;
    insensitive) case_sensitive=N ;;
    *) echo "error: unknown DM8 variant '$variant' (sensitive, insensitive)" >&2; exit 2 ;;
  esac
  name=ldm8-dm8-$variant
  "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true
  # The image's startup script passes these to dminit (they are fixed once the database exists).
  "$DOCKER" run -d --name "$name" --privileged=true -p "127.0.0.1:$PORT:5236" \
    -e LD_LIBRARY_PATH=/opt/dmdbms/bin -e PAGE_SIZE="$PAGE_SIZE" -e CASE_SENSITIVE="$case_sensitive" \
    -e UNICODE_FLAG=1 -e SYSDBA_PWD="$PASSWORD" -e INSTANCE_NAME=LDM8 "$IMAGE" >/dev/null
  started+=("$name")
  echo "== DM8, CASE_SENSITIVE=$case_sensitive, $PAGE_SIZE KB pages, on 127.0.0.1:$PORT ($name)"
  wait_for_dm8 "$PORT" "$case_sensitive"
  LIGHTNING_DM8_TEST_URL="dm+dmPython://SYSDBA@127.0.0.1:$PORT" LIGHTNING_DM8_PASSWORD="$PASSWORD" \
    "$PYTHON" -m pytest "$@" || status=$?
  if [ "${DM8_KEEP:-0}" != 1 ]; then "$DOCKER" rm -f "$name" >/dev/null; fi
done
exit "$status"
