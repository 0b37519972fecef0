#!/bin/sh
# Start Alertmanager on the repository's alertmanager.yml with the receiver URL given at start.
# Alertmanager expands no environment variables in its config, and before 0.26 reads no webhook URL
# from a file: this writes the URL into a private copy (mode 600) so the repository never holds it.
#   ALERTMANAGER_WEBHOOK_URL       the receivers' URL (http:// or https://)
#   ALERTMANAGER_WEBHOOK_URL_FILE  a file holding it (a Kubernetes or compose secret); wins when set
#   ALERTMANAGER_CONFIG            the config (default /etc/alertmanager/alertmanager.yml)
#   ALERTMANAGER_RENDERED          the copy Alertmanager reads (default /alertmanager/alertmanager.rendered.yml)
#   ALERTMANAGER_BIN               the binary (default alertmanager; Debian's is prometheus-alertmanager)
# Other arguments go to Alertmanager. A config change needs a restart (a reload reads the copy).
set -eu
config="${ALERTMANAGER_CONFIG:-/etc/alertmanager/alertmanager.yml}"
rendered="${ALERTMANAGER_RENDERED:-/alertmanager/alertmanager.rendered.yml}"
placeholder="https://alert-receiver.invalid/RECEIVER_URL"
nl='
'
url="${ALERTMANAGER_WEBHOOK_URL:-}"
if [ -n "${ALERTMANAGER_WEBHOOK_URL_FILE:-}" ]; then
    url="$(cat "$ALERTMANAGER_WEBHOOK_URL_FILE")"
fi
case "$url" in
    *" "* | *"	"* | *"$nl"*)
        echo "alertmanager: the webhook URL contains white space" >&2
        exit 2 ;;
    http://* | https://*) ;;
    "") echo "alertmanager: no ALERTMANAGER_WEBHOOK_URL: notifications fail until one is set (alerts stay in the UI)" >&2 ;;
    *)
        echo "alertmanager: the webhook URL must start with http:// or https://" >&2
        exit 2 ;;
esac
umask 077
URL="$url" PLACEHOLDER="$placeholder" awk '
    {
        line = $0; out = ""
        if (ENVIRON["URL"] != "") {
            while ((i = index(line, ENVIRON["PLACEHOLDER"])) > 0) {
                out = out substr(line, 1, i - 1) ENVIRON["URL"]
                line = substr(line, i + length(ENVIRON["PLACEHOLDER"]))
            }
        }
        print out line
    }' "$config" >"$rendered.tmp"
mv "$rendered.tmp" "$rendered"
exec "${ALERTMANAGER_BIN:-alertmanager}" --config.file="$rendered" "$@"
