#!/usr/bin/env bash
# Start a throwaway Alertmanager in the foreground for local driftd runs.
#
#   deploy/alertmanager/start.sh WEBHOOK_URL [LISTEN_ADDRESS] [DATA_DIR]
#
# WEBHOOK_URL     where Alertmanager posts its notifications (e.g. http://127.0.0.1:8099/)
# LISTEN_ADDRESS  the API address, default 127.0.0.1:9093 (loopback only)
# DATA_DIR        config and storage, default a fresh temporary directory (removed on exit)
#
# Clustering is disabled. The binary is $ALERTMANAGER_BIN, else prometheus-alertmanager
# (Debian's package: apt-get install prometheus-alertmanager), else alertmanager on PATH.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
webhook_url=$1
listen=${2:-127.0.0.1:9093}
here=$(cd "$(dirname "$0")" && pwd)

bin=${ALERTMANAGER_BIN:-}
if [[ -z $bin ]]; then
    bin=$(command -v prometheus-alertmanager || command -v alertmanager || true)
fi
if [[ -z $bin || ! -x $bin ]]; then
    echo "start.sh: no Alertmanager binary; apt-get install prometheus-alertmanager" >&2
    exit 1
fi

remove_data=0
if [[ $# -ge 3 ]]; then
    data=$3
    mkdir -p "$data"
else
    data=$(mktemp -d -t driftd-alertmanager.XXXXXX)
    remove_data=1
fi
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [[ $remove_data == 1 ]]; then
        rm -rf "$data"
    fi
}
trap cleanup EXIT
trap 'exit 143' INT TERM

template=$(<"$here/alertmanager.yml.tmpl")
# shellcheck disable=SC2016  # the placeholder is literal text
printf '%s\n' "${template//'${DRIFTD_WEBHOOK_URL}'/$webhook_url}" >"$data/alertmanager.yml"

echo "start.sh: Alertmanager on http://$listen, notifying $webhook_url, data in $data" >&2
"$bin" \
    --config.file="$data/alertmanager.yml" \
    --storage.path="$data/storage" \
    --web.listen-address="$listen" \
    --cluster.listen-address= &
pid=$!
wait "$pid"
