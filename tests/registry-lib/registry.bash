# kiln test harness: a real docker-registry (distribution 2.8) on 127.0.0.1 at a random port.
#
# Source this file (from bats: `load ../registry-lib/registry`) and call
#
#   registry_start MODE [DIR]    MODE: open | htpasswd | token
#   registry_stop                stops everything registry_start (and the proxies) started
#
# DIR (default: $BATS_TEST_TMPDIR/registry, else a mktemp dir) holds the config, the storage, the
# logs and the key material. Every process is also bounded by `timeout` (REGISTRY_LIFETIME
# seconds, default 1800), so nothing outlives a crashed test run for long.
#
# After registry_start these are exported:
#   REGISTRY_MODE      open | htpasswd | token
#   REGISTRY_HOST      127.0.0.1:PORT (use it in references: $REGISTRY_HOST/team/app:1)
#   REGISTRY_URL       http://127.0.0.1:PORT
#   REGISTRY_DIR       the state dir (storage in $REGISTRY_DIR/storage, log in registry.log)
#   REGISTRY_USER, REGISTRY_PASS   credentials accepted in htpasswd and token mode
#                      (kiln-user / a random password); empty in open mode
#   REGISTRY_TOKEN_URL http://127.0.0.1:TPORT/token (token mode)
#   REGISTRY_TOKEN_LOG JSON lines, one per token request: user, scopes, granted (token mode)
#   SKOPEO_AUTH, SKOPEO_SRC_AUTH, SKOPEO_DEST_AUTH   "--creds=USER:PASS", "--src-creds=USER:PASS",
#                      "--dest-creds=USER:PASS" in the auth modes, "" in open mode; use unquoted:
#                      skopeo copy --dest-tls-verify=false $SKOPEO_DEST_AUTH oci:DIR:tag docker://...
#                      skopeo inspect --tls-verify=false $SKOPEO_AUTH docker://...
#   DOCKER_CONFIG      NOT set: tests decide whether kiln sees stored credentials
#
# Token mode options (environment, read by registry_start): REGISTRY_TOKEN_ARGS adds arguments
# to token-server.py (e.g. "--no-anonymous", "--field access_token", "--expires-in 2").
#
# The fault-injecting proxy (fault-proxy.py) and the TLS server are started with
# registry_fault_proxy_start / registry_tls_start below; registry_stop stops them too.

REGISTRY_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REGISTRY_PY=/usr/bin/python3
: "${REGISTRY_LIFETIME:=1800}"

_registry_pids=()

# _registry_free_port: prints a port that was free a moment ago.
_registry_free_port() {
	"$REGISTRY_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# _registry_wait_file FILE SECONDS: waits until FILE exists and is non-empty.
_registry_wait_file() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# _registry_wait_http URL SECONDS: waits until URL answers any HTTP status.
_registry_wait_http() {
	local i code
	for ((i = 0; i < $2 * 10; i++)); do
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null) || code=000
		[ "$code" != 000 ] && return 0
		sleep 0.1
	done
	return 1
}

# _registry_spawn LOG CMD...: starts CMD in the background, bounded by timeout; records its pid.
_registry_spawn() {
	local log=$1
	shift
	timeout --kill-after=5 "$REGISTRY_LIFETIME" "$@" </dev/null >>"$log" 2>&1 3>&- 4>&- 5>&- &
	_registry_last_pid=$!
	_registry_pids+=("$_registry_last_pid")
}

_registry_kill() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

_registry_make_token_keys() {
	local dir=$1
	openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj "/CN=kiln-test-token-issuer" \
		-keyout "$dir/token.key" -out "$dir/token.crt" >/dev/null 2>&1
}

registry_start() {
	local mode=${1:-open} dir=${2:-} port attempt auth_yaml=""
	case "$mode" in
	open | htpasswd | token) ;;
	*) echo "registry_start: unknown mode '$mode'" >&2; return 2 ;;
	esac
	command -v /usr/bin/docker-registry >/dev/null || { echo "docker-registry is not installed" >&2; return 77; }
	if [ -z "$dir" ]; then
		if [ -n "${BATS_TEST_TMPDIR:-}" ]; then
			dir="$BATS_TEST_TMPDIR/registry"
		else
			dir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-registry.XXXXXX")
		fi
	fi
	mkdir -p "$dir/storage"
	export REGISTRY_MODE=$mode REGISTRY_DIR=$dir REGISTRY_USER="" REGISTRY_PASS="" SKOPEO_AUTH=""
	export SKOPEO_SRC_AUTH="" SKOPEO_DEST_AUTH=""
	export REGISTRY_TOKEN_URL="" REGISTRY_TOKEN_LOG=""

	case "$mode" in
	htpasswd)
		REGISTRY_USER=kiln-user
		REGISTRY_PASS="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
		htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASS" >"$dir/htpasswd" 2>/dev/null || return 1
		auth_yaml="auth:
  htpasswd:
    realm: kiln-test-registry
    path: $dir/htpasswd"
		;;
	token)
		REGISTRY_USER=kiln-user
		REGISTRY_PASS="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
		_registry_make_token_keys "$dir" || { echo "openssl failed" >&2; return 1; }
		REGISTRY_TOKEN_LOG="$dir/token-requests.log"
		: >"$REGISTRY_TOKEN_LOG"
		rm -f "$dir/token.port"
		# shellcheck disable=SC2086
		_registry_spawn "$dir/token-server.log" "$REGISTRY_PY" "$REGISTRY_LIB_DIR/token-server.py" \
			--key "$dir/token.key" --issuer kiln-test-issuer --service kiln-test-registry \
			--user "$REGISTRY_USER" --password "$REGISTRY_PASS" --refresh-token "refresh-$REGISTRY_PASS" \
			--log "$REGISTRY_TOKEN_LOG" --port-file "$dir/token.port" ${REGISTRY_TOKEN_ARGS:-}
		REGISTRY_TOKEN_PID=$_registry_last_pid
		_registry_wait_file "$dir/token.port" 20 || { echo "token server did not start" >&2; cat "$dir/token-server.log" >&2; return 1; }
		REGISTRY_TOKEN_URL="http://127.0.0.1:$(cat "$dir/token.port")/token"
		auth_yaml="auth:
  token:
    realm: $REGISTRY_TOKEN_URL
    service: kiln-test-registry
    issuer: kiln-test-issuer
    rootcertbundle: $dir/token.crt"
		;;
	esac
	if [ -n "$REGISTRY_USER" ]; then
		SKOPEO_AUTH="--creds=$REGISTRY_USER:$REGISTRY_PASS"
		SKOPEO_SRC_AUTH="--src-creds=$REGISTRY_USER:$REGISTRY_PASS"
		SKOPEO_DEST_AUTH="--dest-creds=$REGISTRY_USER:$REGISTRY_PASS"
	fi

	for attempt in 1 2 3 4 5; do
		port=$(_registry_free_port)
		cat >"$dir/config.yml" <<-YAML
		version: 0.1
		log:
		  level: error
		  accesslog:
		    disabled: true
		storage:
		  filesystem:
		    rootdirectory: $dir/storage
		  delete:
		    enabled: true
		  maintenance:
		    uploadpurging:
		      enabled: false
		http:
		  addr: 127.0.0.1:$port
		  secret: kiln-test-secret
		$auth_yaml
		YAML
		: >"$dir/registry.log"
		_registry_spawn "$dir/registry.log" /usr/bin/docker-registry serve "$dir/config.yml"
		REGISTRY_PID=$_registry_last_pid
		if _registry_wait_http "http://127.0.0.1:$port/v2/" 20; then
			export REGISTRY_HOST="127.0.0.1:$port" REGISTRY_URL="http://127.0.0.1:$port" REGISTRY_PID
			return 0
		fi
		_registry_kill "$REGISTRY_PID"
		grep -q "address already in use" "$dir/registry.log" || break
	done
	echo "docker-registry did not start:" >&2
	cat "$dir/registry.log" >&2
	registry_stop
	return 1
}

# registry_fault_proxy_start [ARGS...]: starts fault-proxy.py in front of $REGISTRY_URL.
# Exports FAULT_PROXY_HOST (127.0.0.1:PORT), FAULT_PROXY_URL, FAULT_PROXY_LOG (JSON lines per
# request: method, path, fault applied, whether Authorization was present) and
# FAULT_REDIRECT_HOST/FAULT_REDIRECT_LOG (the "other host" blobs may be redirected to:
# 127.0.0.2 when routable, else another port on 127.0.0.1). ARGS are fault rules, see
# fault-proxy.py --help.
registry_fault_proxy_start() {
	local dir=$REGISTRY_DIR/fault-proxy
	mkdir -p "$dir"
	rm -f "$dir/ports"
	export FAULT_PROXY_LOG="$dir/requests.log" FAULT_REDIRECT_LOG="$dir/redirect.log"
	: >"$FAULT_PROXY_LOG"
	: >"$FAULT_REDIRECT_LOG"
	_registry_spawn "$dir/proxy.log" "$REGISTRY_PY" "$REGISTRY_LIB_DIR/fault-proxy.py" \
		--upstream "$REGISTRY_URL" --log "$FAULT_PROXY_LOG" --redirect-log "$FAULT_REDIRECT_LOG" \
		--ports-file "$dir/ports" "$@"
	FAULT_PROXY_PID=$_registry_last_pid
	_registry_wait_file "$dir/ports" 20 || { echo "fault proxy did not start" >&2; cat "$dir/proxy.log" >&2; return 1; }
	local ports
	ports=$(cat "$dir/ports")
	export FAULT_PROXY_HOST="127.0.0.1:${ports%% *}" FAULT_PROXY_URL="http://127.0.0.1:${ports%% *}"
	export FAULT_REDIRECT_HOST="${ports#* }"
}

# registry_tls_start: an HTTPS server with a self-signed certificate on 127.0.0.1 that answers
# like an open registry's /v2/ (200 {}), for TLS verification tests. Exports TLS_HOST
# (127.0.0.1:PORT) and TLS_CERT (the PEM certificate).
registry_tls_start() {
	local dir=${REGISTRY_DIR:-${BATS_TEST_TMPDIR:-$(mktemp -d)}}/tls
	mkdir -p "$dir"
	rm -f "$dir/port"
	openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 || return 1
	_registry_spawn "$dir/server.log" "$REGISTRY_PY" "$REGISTRY_LIB_DIR/tls-server.py" \
		--cert "$dir/cert.pem" --key "$dir/key.pem" --port-file "$dir/port"
	TLS_PID=$_registry_last_pid
	_registry_wait_file "$dir/port" 20 || { echo "tls server did not start" >&2; cat "$dir/server.log" >&2; return 1; }
	export TLS_HOST="127.0.0.1:$(cat "$dir/port")" TLS_CERT="$dir/cert.pem"
}

registry_stop() {
	local pid
	for pid in "${_registry_pids[@]}"; do
		_registry_kill "$pid"
	done
	_registry_pids=()
}
