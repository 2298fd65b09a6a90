#!/usr/bin/env bash
# Autobahn|Testsuite conformance run against a WebSocket echo server that is already
# listening (CI starts pagi-server's echo app first; this script does not start it).
#
# Usage:
#   tests/autobahn/run.sh [URL] [CASES]
#     URL    WebSocket URL of the echo server        (default ws://127.0.0.1:9001)
#     CASES  comma-separated case patterns, quoted    (default "*" = all 517 cases)
#            e.g. '1.*,2.*' or '9.1.1' or '12.*,13.*'
#
# What it does:
#   1. creates (once) and reuses a Python 2.7 virtualenv with autobahntestsuite 0.8.2
#      (`wstest`, which is Python 2 code), pinned in requirements-py27.txt;
#   2. checks that URL answers a WebSocket handshake (101), failing clearly if not;
#   3. writes a fuzzingclient spec and runs `wstest -m fuzzingclient`;
#   4. runs summarize.py on the report: counts per behavior, every failed case, and a
#      non-zero exit if any case failed or fewer cases ran than the spec selects.
#
# Environment (all optional):
#   PYTHON27            Python 2.7 interpreter (default $HOME/.pyenv/versions/2.7.18/bin/python,
#                       then python2.7 / python2 on PATH)
#   PYTHON3             Python 3 interpreter for the helpers (default python3)
#   AUTOBAHN_VENV       the cached Python 2.7 virtualenv
#                       (default ${XDG_CACHE_HOME:-$HOME/.cache}/pagi-autobahn-venv)
#   AUTOBAHN_OUTDIR     where the spec, wstest log and reports go (default <repo>/target/autobahn)
#   AUTOBAHN_WAIT       seconds to wait for the server to accept a handshake (default 10)
#   AUTOBAHN_TIMEOUT    wall-clock cap in seconds for wstest (default 2400)
#   AUTOBAHN_EXCLUDE    comma-separated case patterns to leave out (spec "exclude-cases")
#   AUTOBAHN_ALLOW      comma-separated extra behaviors to accept, e.g. UNIMPLEMENTED
#                       (what 12.* / 13.* report when permessage-deflate is not offered)
#   AUTOBAHN_EXPECT     override the expected number of cases
#   AUTOBAHN_VERBOSE=1  show wstest's per-case lines (always kept in the log file)
#
# Exit status: 0 all selected cases passed; 1 a case failed / too few cases / wstest
# failed; 2 setup problem (no Python 2.7, install failed, server not reachable, bad args).
set -euo pipefail

URL=${1:-ws://127.0.0.1:9001}
CASES=${2:-*}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
REQS=$HERE/requirements-py27.txt

PYTHON3=${PYTHON3:-python3}
CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}
VENV=${AUTOBAHN_VENV:-$CACHE_HOME/pagi-autobahn-venv}
# A small Python 3 venv next to it that only holds `virtualenv<20.22` (the last
# virtualenv able to create Python 2.7 environments).
BOOTSTRAP=${VENV}-bootstrap
OUTDIR=${AUTOBAHN_OUTDIR:-$ROOT/target/autobahn}
WAIT=${AUTOBAHN_WAIT:-10}
TIMEOUT=${AUTOBAHN_TIMEOUT:-2400}
EXCLUDE=${AUTOBAHN_EXCLUDE:-}
ALLOW=${AUTOBAHN_ALLOW:-}
MARKER=.pagi-autobahn-venv   # file inside VENV: "<requirements hash> <python27 path>"

log() { printf '[autobahn] %s\n' "$*"; }
die() { # die CODE MESSAGE...
  local code=$1
  shift
  printf '[autobahn] ERROR: %s\n' "$*" >&2
  exit "$code"
}

case $URL in
  ws://* | wss://*) ;;
  *) die 2 "URL must start with ws:// or wss:// (got '$URL'); usage: $0 [URL] [CASES]" ;;
esac
command -v "$PYTHON3" >/dev/null || die 2 "python3 not found (set PYTHON3)"

# ---------------------------------------------------------------- 1. Python 2.7 virtualenv

find_python27() {
  if [[ -n ${PYTHON27:-} ]]; then
    [[ -x $PYTHON27 ]] || command -v "$PYTHON27" >/dev/null || die 2 "PYTHON27=$PYTHON27 is not executable"
    command -v "$PYTHON27"
    return
  fi
  local c
  for c in "$HOME/.pyenv/versions/2.7.18/bin/python" python2.7 python2; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
      command -v "$c"
      return
    fi
  done
  die 2 "no Python 2.7 found: install it (e.g. 'pyenv install 2.7.18') or set PYTHON27"
}

ensure_venv() {
  local py27 want
  py27=$(find_python27)
  want="$(sha256sum "$REQS" | cut -c1-16) $py27"

  # Reuse the cached venv when it was built from this very requirements file.
  if [[ -x $VENV/bin/wstest && -f $VENV/$MARKER && "$(cat "$VENV/$MARKER")" == "$want" ]]; then
    return
  fi

  # Only ever delete a directory this script created (it carries the marker file).
  if [[ -e $VENV ]]; then
    if [[ -f $VENV/$MARKER ]]; then
      log "requirements changed or venv incomplete: rebuilding $VENV"
      rm -rf -- "$VENV"
    elif [[ -n "$(ls -A "$VENV" 2>/dev/null)" ]]; then
      die 2 "$VENV exists and was not made by this script; remove it or set AUTOBAHN_VENV"
    fi
  fi

  log "creating Python 2.7 virtualenv in $VENV (one-off, ~1 min)"
  if [[ ! -x $BOOTSTRAP/bin/virtualenv ]]; then
    rm -rf -- "$BOOTSTRAP"
    "$PYTHON3" -m venv "$BOOTSTRAP" || die 2 "'$PYTHON3 -m venv' failed (Debian: apt-get install python3-venv)"
    "$BOOTSTRAP/bin/python" -m pip install -q --disable-pip-version-check 'virtualenv<20.22' ||
      die 2 "could not install virtualenv<20.22 into $BOOTSTRAP"
  fi
  "$BOOTSTRAP/bin/virtualenv" -q -p "$py27" "$VENV" || die 2 "virtualenv -p $py27 $VENV failed"

  # pip 20.3.4 (bundled for Python 2) still resolves dependencies, so a wrong or missing
  # pin fails here instead of at test time.
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
  "$VENV/bin/pip" install -q -r "$REQS" || die 2 "pip install -r $REQS failed"
  "$VENV/bin/pip" check >/dev/null || die 2 "pip check found broken requirements in $VENV"
  PYTHONWARNINGS=ignore "$VENV/bin/wstest" -a >/dev/null || die 2 "wstest does not start in $VENV"
  printf '%s\n' "$want" >"$VENV/$MARKER"
  log "virtualenv ready"
}

ensure_venv
WSTEST=$VENV/bin/wstest
PY27=$VENV/bin/python

# ---------------------------------------------------------------- 2. is the server there?

# A real opening handshake, retried for AUTOBAHN_WAIT seconds: a plain TCP check would
# pass for a server that does not speak WebSocket at that path.
log "checking $URL"
"$PYTHON3" - "$URL" "$WAIT" <<'PY' || die 2 "no WebSocket server answering at $URL (start the echo server first; this script does not)"
import base64, os, socket, ssl, sys, time
from urllib.parse import urlsplit

url, wait = sys.argv[1], float(sys.argv[2])
u = urlsplit(url)
secure = u.scheme == "wss"
host, port = u.hostname, u.port or (443 if secure else 80)
path = (u.path or "/") + ("?" + u.query if u.query else "")
hosthdr = u.netloc.rsplit("@", 1)[-1]
deadline = time.monotonic() + wait
last = None
while True:
    try:
        s = socket.create_connection((host, port), timeout=5)
        if secure:  # like wstest: no certificate verification (self-signed test certs)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: {hosthdr}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        status = buf.split(b"\r\n", 1)[0].decode("latin-1")
        if status.split(" ")[1:2] == ["101"]:
            # Polite close: masked close frame, code 1000.
            mask = os.urandom(4)
            payload = (1000).to_bytes(2, "big")
            s.sendall(bytes([0x88, 0x80 | len(payload)]) + mask
                      + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            try:
                s.settimeout(1)
                s.recv(64)
            except OSError:
                pass
            s.close()
            sys.exit(0)
        s.close()
        # Something answered, but not with a WebSocket upgrade: no point in waiting.
        print(f"[autobahn] {url} answered {status!r} instead of '101 Switching Protocols'",
              file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        last = e
    if time.monotonic() >= deadline:
        print(f"[autobahn] cannot connect to {host}:{port} within {wait:g}s: {last}", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.25)
PY

# ---------------------------------------------------------------- 3. spec + wstest

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
REPORTS=$OUTDIR/reports
SPEC=$OUTDIR/fuzzingclient.json
WSLOG=$OUTDIR/wstest.log
rm -rf -- "$REPORTS" # no stale per-case files from an earlier run

"$PYTHON3" - "$SPEC" "$REPORTS" "$URL" "$CASES" "$EXCLUDE" <<'PY'
import json, sys
spec_path, outdir, url, cases, exclude = sys.argv[1:6]
split = lambda s: [p.strip() for p in s.split(",") if p.strip()]
spec = {
    "outdir": outdir,
    "servers": [{"agent": "pagi-server", "url": url}],
    "cases": split(cases),
    "exclude-cases": split(exclude),
    "exclude-agent-cases": {},
}
with open(spec_path, "w") as f:
    json.dump(spec, f, indent=2)
    f.write("\n")
PY

# How many cases the spec selects, by the testsuite's own pattern matching, so a run that
# stops early (server crash, hang) is caught. All cases must be 517.
EXPECT=$(PYTHONWARNINGS=ignore "$PY27" - "$SPEC" <<'PY'
import json, sys
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseBasename, CaseSetname
from autobahntestsuite.caseset import CaseSet
spec = json.load(open(sys.argv[1]))
try:
    n = len(CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories).parseSpecCases(spec))
except Exception as e:
    sys.stderr.write("bad case pattern in %r: %s\n" % (spec["cases"] + spec["exclude-cases"], e))
    sys.exit(1)
print(n)
PY
) || die 2 "CASES '$CASES' / AUTOBAHN_EXCLUDE '$EXCLUDE' is not a valid case pattern list"
[[ $EXPECT -gt 0 ]] || die 2 "CASES '$CASES' selects no test case"
if [[ $CASES == "*" && -z $EXCLUDE && $EXPECT -ne 517 ]]; then
  die 2 "the testsuite lists $EXPECT cases for '*', expected 517 (wrong autobahntestsuite version?)"
fi
EXPECT=${AUTOBAHN_EXPECT:-$EXPECT}

log "running $EXPECT case(s) [$CASES] against $URL (log: $WSLOG, timeout ${TIMEOUT}s)"
start=$(date +%s)
# wstest prints a line per case; keep them in the log and show progress every 50 cases.
set +e
(
  cd "$OUTDIR"
  PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1 timeout --kill-after=10 "$TIMEOUT" \
    "$WSTEST" -m fuzzingclient -s "$SPEC"
) 2>&1 | tee "$WSLOG" | if [[ ${AUTOBAHN_VERBOSE:-0} == 1 ]]; then cat; else
  awk -v total="$EXPECT" '/^Running test case ID/ { n++; if (n % 50 == 0) printf "[autobahn] %d/%d cases started\n", n, total; fflush(); next }
       /Traceback|[Ee]rror|[Ff]ailed|refused/ { print; fflush() }'
fi
pipe_rcs=("${PIPESTATUS[@]}")
set -e
wstest_rc=${pipe_rcs[0]}
elapsed=$(($(date +%s) - start))
log "wstest finished in ${elapsed}s (exit $wstest_rc)"

# ---------------------------------------------------------------- 4. summary

summary_rc=0
if [[ -f $REPORTS/index.json ]]; then
  allow_args=()
  IFS=, read -r -a allow_list <<<"$ALLOW"
  for a in "${allow_list[@]}"; do [[ -n ${a// /} ]] && allow_args+=(--allow "$a"); done
  "$PYTHON3" "$HERE/summarize.py" --expect "$EXPECT" ${allow_args[@]+"${allow_args[@]}"} "$REPORTS/index.json" ||
    summary_rc=$?
  log "HTML report: $REPORTS/index.html"
else
  log "no report written ($REPORTS/index.json missing); last lines of $WSLOG:"
  tail -n 20 "$WSLOG" >&2 || true
  summary_rc=1
fi

if [[ $wstest_rc -eq 124 || $wstest_rc -eq 137 ]]; then
  die 1 "wstest did not finish within ${TIMEOUT}s (AUTOBAHN_TIMEOUT)"
elif [[ $wstest_rc -ne 0 ]]; then
  die 1 "wstest exited with status $wstest_rc (see $WSLOG)"
fi
if [[ $summary_rc -ne 0 ]]; then
  die 1 "Autobahn conformance failed (details above; report in $REPORTS)"
fi
log "Autobahn conformance passed ($EXPECT cases, ${elapsed}s)"
