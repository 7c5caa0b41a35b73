#!/usr/bin/env bash
# A real Secret Service (gnome-keyring) for perpbot's keyring tests, headless.
#
#   .ci/secret-service.sh CMD [ARGS...]    run CMD inside a fresh D-Bus session whose
#                                           gnome-keyring is unlocked and verified; exits with
#                                           CMD's status (e.g. `.ci/secret-service.sh pytest`)
#   .ci/secret-service.sh --require CMD..   the same, but fail (exit 1) when no Secret Service
#                                           can be started instead of running CMD without one
#   .ci/secret-service.sh                   start, verify, report, stop: a self-check
#   .ci/secret-service.sh --env             start a session that outlives the script and print
#                                           `export VAR=...` lines for `eval`; stop it with
#                                           `kill $PERPBOT_SECRET_SERVICE_PIDS`
#   source .ci/secret-service.sh --source   the same as --env, exported into this shell
#
# How (each step is a known trap):
# - a private session bus: `dbus-run-session` for CMD (the bus and the keyring daemon end
#   with CMD), or a forked `dbus-daemon --session` for --env/--source;
# - fresh XDG_DATA_HOME and XDG_RUNTIME_DIR, so a new login keyring is created and no
#   keyring of the machine's user is touched;
# - unlocked by piping a non-empty password to `gnome-keyring-daemon --unlock
#   --components=secrets` with printf (echo's trailing newline would become part of it);
# - verified by a real store/lookup/clear with secret-tool (or python keyring), because a
#   wrong password still exits 0;
# - PYTHON_KEYRING_BACKEND pinned to SecretService, so a keyrings.alt plaintext backend in
#   the venv can never be picked instead;
# - PERPBOT_SECRET_SERVICE=1 exported: perpbot's real-backend tests then fail, rather than
#   skip, if the keyring does not work.
# Messages go to stderr; stdout belongs to CMD (or to the export lines of --env).
# Needs: dbus (dbus-daemon, dbus-run-session), gnome-keyring; libsecret-tools for secret-tool.
#   apt-get install -y gnome-keyring dbus-x11 libsecret-tools

_ss_log() { printf 'secret-service: %s\n' "$*" >&2; }

_ss_missing() {
    local tool
    for tool in dbus-daemon dbus-run-session gnome-keyring-daemon; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            printf '%s' "$tool"
            return 0
        fi
    done
    return 1
}

_ss_python() {
    local py
    for py in "${PERPBOT_PYTHON:-}" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" python3 python; do
        if [ -n "$py" ] && "$py" -c 'import keyring' >/dev/null 2>&1; then
            printf '%s' "$py"
            return 0
        fi
    done
    return 1
}

# Fresh data/runtime dirs, unlock, verify. Expects DBUS_SESSION_BUS_ADDRESS to be set.
_ss_unlock_and_verify() {
    local password probe got py
    XDG_DATA_HOME="$(mktemp -d "${TMPDIR:-/tmp}/perpbot-ss-data.XXXXXX")" || return 1
    XDG_RUNTIME_DIR="$(mktemp -d "${TMPDIR:-/tmp}/perpbot-ss-run.XXXXXX")" || return 1
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_DATA_HOME XDG_RUNTIME_DIR
    _ss_log "fresh XDG_DATA_HOME=$XDG_DATA_HOME XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
    password="perpbot-ci-$$-${RANDOM}${RANDOM}"
    if ! printf '%s' "$password" | gnome-keyring-daemon --unlock --components=secrets >/dev/null; then
        _ss_log "gnome-keyring-daemon --unlock failed"
        return 1
    fi
    _ss_log "gnome-keyring-daemon started, login keyring created and unlocked (password via printf)"
    export PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring"
    probe="probe-$$-${RANDOM}"
    if command -v secret-tool >/dev/null 2>&1; then
        printf '%s' "$probe" | secret-tool store --label=perpbot-ci-probe service perpbot-ci-probe account probe \
            || { _ss_log "secret-tool store failed"; return 1; }
        got="$(secret-tool lookup service perpbot-ci-probe account probe)"
        secret-tool clear service perpbot-ci-probe account probe
        if [ "$got" != "$probe" ]; then
            _ss_log "verification failed: secret-tool read back something else"
            return 1
        fi
        _ss_log "verified with secret-tool: store, lookup, clear"
    fi
    if py="$(_ss_python)"; then
        if ! PROBE="$probe" "$py" - <<'PY' >&2
import os, sys
import keyring
backend = keyring.get_keyring()
name = f"{type(backend).__module__}.{type(backend).__name__}"
if name != "keyring.backends.SecretService.Keyring":
    sys.exit(f"secret-service: python keyring chose {name}, not SecretService")
keyring.set_password("perpbot-ci-probe", "probe", os.environ["PROBE"])
ok = keyring.get_password("perpbot-ci-probe", "probe") == os.environ["PROBE"]
keyring.delete_password("perpbot-ci-probe", "probe")
sys.exit(0 if ok else "secret-service: python keyring read back something else")
PY
        then
            return 1
        fi
        _ss_log "verified with $py: keyring uses SecretService, set/get/delete work"
    elif ! command -v secret-tool >/dev/null 2>&1; then
        _ss_log "cannot verify: neither secret-tool (libsecret-tools) nor a python with keyring"
        return 1
    fi
    export PERPBOT_SECRET_SERVICE=1
    return 0
}

_ss_keyring_pid() {
    command -v dbus-send >/dev/null 2>&1 || return 0
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null \
        | awk '/uint32/ {print $2}'
}

# Forked bus for --env/--source: sets DBUS_SESSION_BUS_ADDRESS and PERPBOT_SECRET_SERVICE_PIDS.
_ss_start_forked() {
    local missing out bus_pid kr_pid
    if missing="$(_ss_missing)"; then
        _ss_log "unavailable: $missing not found (apt-get install -y gnome-keyring dbus-x11 libsecret-tools)"
        return 1
    fi
    out="$(dbus-daemon --session --fork --print-address=1 --print-pid=1)" || {
        _ss_log "dbus-daemon --session failed to start"
        return 1
    }
    DBUS_SESSION_BUS_ADDRESS="$(printf '%s\n' "$out" | sed -n 1p)"
    bus_pid="$(printf '%s\n' "$out" | sed -n 2p)"
    export DBUS_SESSION_BUS_ADDRESS
    _ss_log "session bus started (pid $bus_pid) at $DBUS_SESSION_BUS_ADDRESS"
    if ! _ss_unlock_and_verify; then
        kill "$bus_pid" 2>/dev/null
        return 1
    fi
    kr_pid="$(_ss_keyring_pid)"
    PERPBOT_SECRET_SERVICE_PIDS="${kr_pid:+$kr_pid }$bus_pid"
    export PERPBOT_SECRET_SERVICE_PIDS
    _ss_log "ready; stop it with: kill $PERPBOT_SECRET_SERVICE_PIDS"
    return 0
}

_ss_exports() {
    local var
    for var in DBUS_SESSION_BUS_ADDRESS XDG_DATA_HOME XDG_RUNTIME_DIR PYTHON_KEYRING_BACKEND \
        PERPBOT_SECRET_SERVICE PERPBOT_SECRET_SERVICE_PIDS; do
        printf 'export %s=%q\n' "$var" "${!var}"
    done
}

# Sourced: `source .ci/secret-service.sh --source`
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    if [ "${1:-}" = "--source" ]; then
        _ss_start_forked
    fi
    return 0 2>/dev/null
fi

set -u
require=0
if [ "${1:-}" = "--require" ]; then
    require=1
    shift
fi

case "${1:-}" in
    --inside)  # re-executed by dbus-run-session below
        shift
        if ! _ss_unlock_and_verify; then
            _ss_log "could not start a working Secret Service"
            [ "$require" = 1 ] && exit 1
            unset PERPBOT_SECRET_SERVICE PYTHON_KEYRING_BACKEND
            _ss_log "running without one: the real-keyring tests will be skipped"
        fi
        if [ "$#" -eq 0 ]; then
            _ss_log "self-check passed; stopping"
            exit 0
        fi
        _ss_log "running: $*"
        "$@"
        status=$?
        rm -rf "${XDG_DATA_HOME:?}" "${XDG_RUNTIME_DIR:?}" 2>/dev/null
        exit "$status"
        ;;
    --env)
        _ss_start_forked || exit 1
        _ss_exports
        exit 0
        ;;
    -h | --help)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac

if missing="$(_ss_missing)"; then
    _ss_log "unavailable: $missing not found (apt-get install -y gnome-keyring dbus-x11 libsecret-tools)"
    [ "$require" = 1 ] && exit 1
    if [ "$#" -eq 0 ]; then
        exit 1
    fi
    _ss_log "running without one: the real-keyring tests will be skipped. Running: $*"
    exec "$@"
fi
_ss_log "starting a private D-Bus session (dbus-run-session)"
if [ "$require" = 1 ]; then
    exec dbus-run-session -- bash "$0" --require --inside "$@"
fi
exec dbus-run-session -- bash "$0" --inside "$@"
