#!/bin/sh
# Headless, idempotent ZenML bootstrap for the compose stack (runs inside the pipeline image).
#
#   zenml-bootstrap.sh bootstrap     once per `up`: make sure ONE service account exists and that its ONE
#                                    API key sits in $ZENML_API_KEY_FILE (a named volume); reuse it when it
#                                    still authenticates, never mint a new key per run.
#   zenml-bootstrap.sh exec CMD...   entrypoint of the runner and the service: export the stored key as
#                                    ZENML_STORE_API_KEY, apply $MLOPS_STACK when set, then exec CMD.
#
# Needs ZENML_STORE_URL; `bootstrap` also needs the admin's ZENML_ADMIN_USERNAME/ZENML_ADMIN_PASSWORD,
# which are used only here and never handed to the runner or the service.
set -eu

KEY_FILE="${ZENML_API_KEY_FILE:-/var/lib/mlops/zenml/api-key}"
ACCOUNT="${ZENML_SERVICE_ACCOUNT:-mlops-pipeline}"
KEY_NAME="${ZENML_API_KEY_NAME:-mlops}"
export ZENML_ANALYTICS_OPT_IN=false ZENML_ENABLE_RICH_TRACEBACK=false AUTO_OPEN_DASHBOARD=false

log() { printf 'zenml-bootstrap: %s\n' "$*" >&2; }

key_works() {
    [ -s "$KEY_FILE" ] || return 1
    ZENML_STORE_API_KEY="$(cat "$KEY_FILE")" ZENML_CONFIG_PATH="$(mktemp -d)" \
        zenml stack list >/dev/null 2>&1
}

as_admin() {
    ZENML_STORE_USERNAME="${ZENML_ADMIN_USERNAME:-admin}" \
    ZENML_STORE_PASSWORD="${ZENML_ADMIN_PASSWORD:?ZENML_ADMIN_PASSWORD is required to bootstrap}" \
    ZENML_CONFIG_PATH="${ADMIN_CONFIG}" "$@"
}

bootstrap() {
    : "${ZENML_STORE_URL:?ZENML_STORE_URL is required}"
    if key_works; then
        log "reusing the API key of service account '$ACCOUNT' from $KEY_FILE"
    else
        new_key
    fi
    if [ -n "${MLOPS_STACK:-}" ]; then
        # Registered once here (idempotent), so clients starting together only find it unchanged.
        log "applying stack configs/stacks/$MLOPS_STACK.yaml"
        ZENML_STORE_API_KEY="$(cat "$KEY_FILE")" mlops stack apply "$MLOPS_STACK" >&2
    fi
}

new_key() {
    ADMIN_CONFIG="$(mktemp -d)"
    mkdir -p "$(dirname "$KEY_FILE")"
    umask 077
    tmp="$KEY_FILE.tmp"
    rm -f "$tmp"
    if ! as_admin zenml service-account describe "$ACCOUNT" >/dev/null 2>&1; then
        log "creating service account '$ACCOUNT'"
        as_admin zenml service-account create "$ACCOUNT" --create-api-key false >/dev/null
    fi
    if as_admin zenml service-account api-key "$ACCOUNT" describe "$KEY_NAME" >/dev/null 2>&1; then
        # The stored copy was lost (volume removed): rotate the one key instead of adding another.
        log "stored key missing or invalid: rotating API key '$KEY_NAME'"
        as_admin zenml service-account api-key "$ACCOUNT" rotate "$KEY_NAME" --retain 0 --output-file "$tmp" >/dev/null
    else
        log "creating API key '$KEY_NAME'"
        as_admin zenml service-account api-key "$ACCOUNT" create "$KEY_NAME" --output-file "$tmp" >/dev/null
    fi
    mv "$tmp" "$KEY_FILE"
    rm -rf "$ADMIN_CONFIG"
    key_works || { log "the new key does not authenticate"; exit 1; }
    log "API key stored in $KEY_FILE"
}

run() {
    if [ -s "$KEY_FILE" ] && [ -z "${ZENML_STORE_API_KEY:-}" ]; then
        ZENML_STORE_API_KEY="$(cat "$KEY_FILE")"
        export ZENML_STORE_API_KEY
    fi
    if [ -n "${MLOPS_STACK:-}" ]; then
        mlops stack apply "$MLOPS_STACK" --activate >&2
    fi
    exec "$@"
}

case "${1:-bootstrap}" in
    bootstrap) bootstrap ;;
    exec)
        shift
        [ "$#" -gt 0 ] || { log "exec needs a command"; exit 2; }
        run "$@"
        ;;
    *) exec "$@" ;;
esac
