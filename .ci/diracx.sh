#!/usr/bin/env bash
# .ci/diracx.sh: a real DiracX 0.7.0 server on loopback, for the DIRAC backend's tests.
#
# What runs (all on 127.0.0.1, all state under $DIR):
#   - uvicorn serving `diracx.testing.routers:create_app`: DiracX's own routers, logic and SQL
#     DBs (sqlite files under $DIR/db); the only swap is the OpenSearch job-parameters DB for a
#     sqlite one, as DiracX's own run_local.sh does;
#   - moto_server as the S3 sandbox store (it must be up before uvicorn, which creates the bucket);
#   - a tiny OIDC identity provider that approves every login, so the device flow runs end to end;
#   - a git CS with VO `testvo` and users alice (group user), admin (group admin: JobAdministrator)
#     and pilot (group pilot: GenericPilot).
#
# Usage:
#   .ci/diracx.sh start                 install once, start what is not running, mint tokens, write
#                                       the env file; idempotent (a second start only re-checks).
#                                       A server started after a stop starts empty (moto keeps
#                                       sandboxes in memory only, so the databases are reset too)
#   .ci/diracx.sh stop                  stop the processes this script started (by their pid files)
#   .ci/diracx.sh status                which of them run
#   .ci/diracx.sh env                   print the env file (KEY=value lines, also shell-sourceable)
#   .ci/diracx.sh token USER GROUP [MINUTES]
#                                       print a fresh token response (JSON) for a CS user, through
#                                       the server's legacy-exchange endpoint
#   .ci/diracx.sh expire [SECONDS]      read an access token on stdin, print it signed again with the
#                                       server's key but expired SECONDS ago (default 60)
#   .ci/diracx.sh extra-start PORT      one more uvicorn on PORT over the same DBs, keys and S3:
#   .ci/diracx.sh extra-stop PORT       tests stop and restart it to see the server go away and
#                                       come back without disturbing the main one
#
# Knobs: GANGA_DIRACX_DIR (default /tmp/ganga-diracx), GANGA_DIRACX_PORT (28000),
#   GANGA_DIRACX_S3_PORT (28001), GANGA_DIRACX_IDP_PORT (28002), PYTHON (python3, >= 3.11).
# Needs python3 >= 3.11, git and curl; PyPI for the first install, loopback otherwise.
# The env file is $DIR/diracx.env; the tests read it (GANGA_DIRACX_ENV overrides its path).
set -euo pipefail

DIR=${GANGA_DIRACX_DIR:-/tmp/ganga-diracx}
VENV=$DIR/venv
PORT=${GANGA_DIRACX_PORT:-28000}
S3_PORT=${GANGA_DIRACX_S3_PORT:-28001}
IDP_PORT=${GANGA_DIRACX_IDP_PORT:-28002}
PY=${PYTHON:-python3}
VERSION=0.7.0
BASE="http://127.0.0.1:$PORT"
VO=testvo

# The CS users' subjects (any fixed UUIDs).
ALICE_SUB=11111111-1111-1111-1111-111111111111
ADMIN_SUB=22222222-2222-2222-2222-222222222222
PILOT_SUB=33333333-3333-3333-3333-333333333333

say() { printf '[diracx.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ------------------------------------------------------------------------------- install
installed() {
  [ -f "$VENV/.ganga-installed-$VERSION" ] && [ -x "$VENV/bin/uvicorn" ] && [ -x "$VENV/bin/moto_server" ]
}

install() {
  installed && return
  say "installing DiracX $VERSION into $VENV (first time only)"
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PY is $("$PY" --version 2>&1); DiracX $VERSION needs Python >= 3.11"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  local pkgs=("diracx-core==$VERSION" "diracx-db==$VERSION" "diracx-logic==$VERSION"
              "diracx-routers==$VERSION" "diracx-tasks==$VERSION" "diracx-testing==$VERSION"
              "moto[server]" uvicorn)
  # uv installs the ~300 packages in seconds where pip takes ~40 s. --compile-bytecode writes
  # the .pyc files now: where PYTHONDONTWRITEBYTECODE is set, Python never writes them itself
  # and every start would compile the whole server again (~18 s).
  if "$VENV/bin/pip" install -q --disable-pip-version-check uv \
     && "$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" "${pkgs[@]}"; then
    :
  else
    say "uv failed; installing with pip"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${pkgs[@]}"
    "$VENV/bin/python" -m compileall -q "$VENV/lib" >/dev/null || true
  fi
  touch "$VENV/.ganga-installed-$VERSION"
}

# ------------------------------------------------------------------------------- state
write_idp() {
  cat > "$DIR/idp.py" <<'PY'
"""An OIDC identity provider for tests: /authorize approves at once, /token issues an RS256
id_token for the current subject (--sub, or GET /_set_user?sub=...). Loopback only."""
import argparse, json, secrets, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

KEY = RSAKey.generate_key(2048, parameters={"kid": "test-idp", "alg": "RS256", "use": "sig"})
SUB = {"now": None}
CODES = {}

class Handler(BaseHTTPRequestHandler):
    issuer = ""

    def reply(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration":
            i = self.issuer
            self.reply({"issuer": i, "authorization_endpoint": f"{i}/authorize",
                        "token_endpoint": f"{i}/token", "jwks_uri": f"{i}/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "response_types_supported": ["code"], "subject_types_supported": ["public"]})
        elif url.path == "/jwks":
            self.reply(KeySet([KEY]).as_dict(private=False))
        elif url.path == "/authorize":
            code = secrets.token_urlsafe(16)
            CODES[code] = (SUB["now"], q.get("client_id", ""))
            self.send_response(302)
            self.send_header("Location", q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")}))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/_set_user":
            SUB["now"] = q["sub"]
            self.reply({"sub": SUB["now"]})
        else:
            self.reply({"error": "not found"}, 404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
        if urlparse(self.path).path != "/token":
            return self.reply({"error": "not found"}, 404)
        entry = CODES.pop(form.get("code", ""), None)
        if entry is None:
            return self.reply({"error": "invalid_grant"}, 400)
        sub, client_id = entry
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": sub, "aud": form.get("client_id") or client_id,
                  "iat": now, "exp": now + 600}
        token = jwt.encode({"alg": "RS256", "kid": "test-idp"}, claims, KEY)
        self.reply({"id_token": token, "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer", "expires_in": 600})

    def log_message(self, fmt, *args):
        print("idp:", fmt % args, flush=True)

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sub", required=True)
    a = p.parse_args()
    SUB["now"] = a.sub
    Handler.issuer = f"http://127.0.0.1:{a.port}"
    ThreadingHTTPServer(("127.0.0.1", a.port), Handler).serve_forever()
PY
}

write_cs() {
  [ -d "$DIR/cs/.git" ] && return
  mkdir -p "$DIR/cs"
  git -C "$DIR/cs" init -q -b master   # DiracX reads the CS from branch master
  cat > "$DIR/cs/default.yml" <<EOF
DIRAC: {}
Operations:
  Defaults: {}
Registry:
  $VO:
    DefaultGroup: user
    IdP:
      URL: http://127.0.0.1:$IDP_PORT
      ClientID: test-idp
    Users:
      $ALICE_SUB: {PreferedUsername: alice}
      $ADMIN_SUB: {PreferedUsername: admin}
      $PILOT_SUB: {PreferedUsername: pilot}
    Groups:
      user:  {Properties: [NormalUser], Users: [$ALICE_SUB]}
      admin: {Properties: [NormalUser, JobAdministrator], Users: [$ADMIN_SUB]}
      pilot: {Properties: [GenericPilot], Users: [$PILOT_SUB]}
EOF
  git -C "$DIR/cs" add default.yml
  git -C "$DIR/cs" -c user.name=ganga-ci -c user.email=ganga-ci@localhost commit -q -m "test CS"
}

setup_state() {
  mkdir -p "$DIR"/{db,keystore,logs,pids,tokens}
  write_idp
  write_cs
  # The token signing key is kept across restarts, so tokens minted before stay valid.
  [ -s "$DIR/keystore/jwks.json" ] \
    || "$VENV/bin/python" -m diracx.logic rotate-jwk --jwks-path "$DIR/keystore/jwks.json" >/dev/null 2>&1 \
    || die "cannot create the token signing key"
  if [ ! -s "$DIR/secrets.sh" ]; then
    "$VENV/bin/python" - > "$DIR/secrets.sh.new" <<'PY'
import base64, hashlib, secrets
from cryptography.fernet import Fernet
raw = secrets.token_bytes(32)
print(f'STATE_KEY={Fernet.generate_key().decode()}')
print(f'LEGACY_KEY={base64.urlsafe_b64encode(raw).decode()}')
print(f'LEGACY_HASH={hashlib.sha256(raw).hexdigest()}')
PY
    mv "$DIR/secrets.sh.new" "$DIR/secrets.sh"
  fi
  # shellcheck disable=SC1091
  . "$DIR/secrets.sh"
  {
    # sqlite waits 5 s for a lock by default; tests that write from many requests at once
    # (and a second server over the same files) need longer.
    "$VENV/bin/python" -m diracx.db generate-local-urls "$DIR/db" \
      | sed -E 's|^(export DIRACX_DB_URL_[A-Z]+="sqlite[^"]*\.db)"|\1?timeout=60"|'
    cat <<EOF
export DIRACX_CONFIG_BACKEND_URL="git+file://$DIR/cs"
export DIRACX_SERVICE_AUTH_TOKEN_KEYSTORE="file://$DIR/keystore/jwks.json"
export DIRACX_SERVICE_AUTH_STATE_KEY="$STATE_KEY"
export DIRACX_SERVICE_AUTH_TOKEN_ISSUER="$BASE"
export DIRACX_SERVICE_AUTH_ALLOWED_REDIRECTS='["$BASE/api/docs/oauth2-redirect"]'
export DIRACX_SERVICE_AUTH_ACCESS_TOKEN_EXPIRE_MINUTES=1440
export DIRACX_SERVICE_AUTH_REFRESH_TOKEN_EXPIRE_MINUTES=2880
export DIRACX_SANDBOX_STORE_BUCKET_NAME=sandboxes
export DIRACX_SANDBOX_STORE_AUTO_CREATE_BUCKET=true
export DIRACX_SANDBOX_STORE_S3_CLIENT_KWARGS='{"endpoint_url": "http://127.0.0.1:$S3_PORT", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}'
export DIRACX_LEGACY_EXCHANGE_HASHED_API_KEY="$LEGACY_HASH"
EOF
  } > "$DIR/server.env.new"
  mv "$DIR/server.env.new" "$DIR/server.env"
}

# ------------------------------------------------------------------------------- processes
running() { [ -s "$DIR/pids/$1.pid" ] && kill -0 "$(cat "$DIR/pids/$1.pid")" 2>/dev/null; }

spawn() {  # NAME COMMAND...: started in its own session, so it outlives the shell that started it
  local name=$1; shift
  running "$name" && return
  setsid nohup "$@" > "$DIR/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$DIR/pids/$name.pid"
}

wait_http() {  # NAME URL: waits until URL answers 2xx (60 s), or NAME died
  local name=$1 url=$2 _
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null --max-time 2 "$url" && return 0
    running "$name" || { say "$name exited:"; tail -20 "$DIR/logs/$name.log" >&2; return 1; }
    sleep 0.1
  done
  say "$name not ready after 60 s:"; tail -20 "$DIR/logs/$name.log" >&2; return 1
}

start_api() {  # NAME PORT
  (
    # shellcheck disable=SC1091
    . "$DIR/server.env"
    spawn "$1" "$VENV/bin/uvicorn" --factory diracx.testing.routers:create_app \
      --host 127.0.0.1 --port "$2" --workers 1
  )
  # /api/health/ready, not the port: the server answers 503 until the CS is loaded.
  wait_http "$1" "http://127.0.0.1:$2/api/health/ready"
}

stop_one() {  # NAME
  local pid
  running "$1" || { rm -f "$DIR/pids/$1.pid"; return 0; }
  pid=$(cat "$DIR/pids/$1.pid")
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$DIR/pids/$1.pid"
  say "stopped $1 ($pid)"
}

# ------------------------------------------------------------------------------- tokens
token() {  # USER GROUP [MINUTES]: the server's answer (JSON) on stdout
  # shellcheck disable=SC1091
  . "$DIR/secrets.sh"
  local args=(--data-urlencode "preferred_username=$1" --data-urlencode "scope=vo:$VO group:$2")
  [ -n "${3:-}" ] && args+=(--data-urlencode "expires_minutes=$3")
  curl -sf --max-time 10 -G "$BASE/api/auth/legacy-exchange" "${args[@]}" \
    -H "Authorization: Bearer diracx:legacy:$LEGACY_KEY"
}

mint() {  # USER GROUP: writes $DIR/tokens/USER.json (0600)
  local f=$DIR/tokens/$1.json
  ( umask 077; token "$1" "$2" > "$f.new" ) || die "cannot mint a token for $1 ($2)"
  mv "$f.new" "$f"
}

expire() {  # reads a DiracX access token on stdin, prints it re-signed with `exp` SECONDS ago
  local token
  token=$(cat)
  "$VENV/bin/python" -c '
import json, sys, time
from joserfc import jwt
from joserfc.jwk import KeySet
keys = KeySet.import_key_set(json.load(open(sys.argv[1])))
algs = ["Ed25519", "RS256"]
claims = dict(jwt.decode(sys.argv[3].strip(), keys, algorithms=algs).claims)
claims["exp"] = int(time.time()) - int(sys.argv[2])
key = next(k for k in keys.keys if "sign" in (k.get("key_ops") or []))
print(jwt.encode({"alg": key.get("alg"), "kid": key.get("kid")}, claims, keys, algorithms=algs))
' "$DIR/keystore/jwks.json" "${1:-60}" "$token"
}

write_env() {
  # shellcheck disable=SC1091
  . "$DIR/secrets.sh"
  ( umask 077; cat > "$DIR/diracx.env.new" <<EOF
DIRACX_URL=$BASE
DIRACX_VO=$VO
DIRACX_TOKEN_ALICE=$DIR/tokens/alice.json
DIRACX_TOKEN_ADMIN=$DIR/tokens/admin.json
DIRACX_TOKEN_PILOT=$DIR/tokens/pilot.json
DIRACX_LEGACY_KEY=$LEGACY_KEY
DIRACX_IDP_URL=http://127.0.0.1:$IDP_PORT
DIRACX_ALICE_SUB=$ALICE_SUB
DIRACX_CI_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
DIRACX_CI_DIR=$DIR
EOF
  )
  mv "$DIR/diracx.env.new" "$DIR/diracx.env"
}

start() {
  local t0 t1
  t0=$(date +%s.%N)
  command -v git >/dev/null || die "git is needed (the CS is a git repository)"
  command -v curl >/dev/null || die "curl is needed"
  install
  t1=$(date +%s.%N)
  setup_state
  if ! running moto; then
    # moto keeps the sandboxes in memory only: a new moto starts empty, so the databases
    # (which would list sandboxes it no longer has) start empty too.
    rm -f "$DIR"/db/*.db
  fi
  spawn moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT"
  spawn idp "$VENV/bin/python" "$DIR/idp.py" --port "$IDP_PORT" --sub "$ALICE_SUB"
  wait_http moto "http://127.0.0.1:$S3_PORT/"
  wait_http idp "http://127.0.0.1:$IDP_PORT/.well-known/openid-configuration"
  start_api diracx "$PORT"
  mint alice user
  mint admin admin
  mint pilot pilot
  write_env
  say "install $(echo "$t1 - $t0" | bc) s, start $(echo "$(date +%s.%N) - $t1" | bc) s"
  say "DiracX $VERSION at $BASE; env file: $DIR/diracx.env"
}

stop() {
  local n
  for n in "$DIR"/pids/extra-*.pid; do [ -e "$n" ] && stop_one "$(basename "$n" .pid)"; done
  for n in diracx idp moto; do stop_one "$n"; done
}

status() {
  local n rc=0
  for n in diracx moto idp; do
    if running "$n"; then echo "$n: running (pid $(cat "$DIR/pids/$n.pid"))"; else echo "$n: stopped"; rc=1; fi
  done
  return $rc
}

locked() {  # one start/stop at a time (tests and CI may call start together)
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
  "$@"
}

case "${1:-}" in
  start) locked start ;;
  stop) locked stop ;;
  status) status ;;
  env) [ -s "$DIR/diracx.env" ] || die "no env file: run '$0 start' first"; cat "$DIR/diracx.env" ;;
  token) token "${2:?usage: $0 token USER GROUP [MINUTES]}" "${3:?usage: $0 token USER GROUP [MINUTES]}" "${4:-}"; echo ;;
  expire) expire "${2:-60}" ;;
  extra-start)
    [ -s "$DIR/server.env" ] || die "run '$0 start' first"
    start_api "extra-${2:?usage: $0 extra-start PORT}" "$2" ;;
  extra-stop) stop_one "extra-${2:?usage: $0 extra-stop PORT}" ;;
  *) echo "usage: $0 start|stop|status|env|token USER GROUP [MINUTES]|expire [SECONDS]|extra-start PORT|extra-stop PORT" >&2; exit 2 ;;
esac
