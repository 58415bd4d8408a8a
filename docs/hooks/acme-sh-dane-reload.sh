#!/bin/sh
# acme.sh reload command: put a renewed certificate in front of senders only when DANE
# senders will accept its key (dane-monitor preflight and rollover status, docs/rollover.md).
#
#   acme.sh --install-cert -d mx1.example.de \
#       --fullchain-file /etc/acme-staging/mx1/fullchain.pem \
#       --key-file /etc/acme-staging/mx1/privkey.pem \
#       --reloadcmd 'DANE_MX_HOST=mx1.example.de DANE_DEPLOY_DIR=/etc/postfix/tls \
#                    /usr/local/bin/acme-sh-dane-reload.sh'
#
# acme.sh installs the new files in a staging directory (CERT_FULLCHAIN_PATH and
# CERT_KEY_PATH, which acme.sh exports to the reload command); the mail server reads copies
# in DANE_DEPLOY_DIR, replaced here once the published TLSA records take the new chain
# (preflight) and the record has been on every authoritative server for twice its TTL
# ('rollover status' stage 4). Until then run this script again from cron (same
# environment) until it deploys.
#
# Environment: DANE_MX_HOST, DANE_DEPLOY_DIR (required); DANE_RELOAD (default: systemctl
# reload postfix), DANE_MONITOR (default: dane-monitor), DANE_DNS_OPTS (its DNS options, e.g.
# --resolver 127.0.0.1), DANE_ROLLOVER_OPTS (more options for 'rollover status', e.g. --state
# FILE); CERT_FULLCHAIN_PATH and CERT_KEY_PATH (set by acme.sh).
#
# Exit: 0 deployed (or nothing to do), 75 wait and run again later (EX_TEMPFAIL),
# 1 act first: publish the record the output names, or DNS cannot tell.
set -u
: "${CERT_FULLCHAIN_PATH:?run by acme.sh as --reloadcmd (or set CERT_FULLCHAIN_PATH)}"
: "${CERT_KEY_PATH:?run by acme.sh as --reloadcmd (or set CERT_KEY_PATH)}"
: "${DANE_MX_HOST:?set DANE_MX_HOST to the MX host name}"
: "${DANE_DEPLOY_DIR:?set DANE_DEPLOY_DIR to where the mail server reads its certificate}"
DANE_RELOAD=${DANE_RELOAD:-systemctl reload postfix}
DANE_MONITOR=${DANE_MONITOR:-dane-monitor}
DANE_DNS_OPTS=${DANE_DNS_OPTS:-}
DANE_ROLLOVER_OPTS=${DANE_ROLLOVER_OPTS:-}

if cmp -s "$CERT_FULLCHAIN_PATH" "$DANE_DEPLOY_DIR/fullchain.pem"; then
    echo "acme-dane: $DANE_MX_HOST already has this certificate"
    exit 0
fi

# Does the validated TLSA RRset take the new chain at all? (2: publish first, 3: DNS)
# shellcheck disable=SC2086  # DANE_MONITOR and the *_OPTS are word lists
$DANE_MONITOR preflight --cert "$CERT_FULLCHAIN_PATH" --mx "$DANE_MX_HOST" $DANE_DNS_OPTS
case $? in
0) ;;
*)
    echo "acme-dane: not deployed: do what the lines above say, then run this again" >&2
    exit 1
    ;;
esac
# Is it on every authoritative server, for long enough?
# shellcheck disable=SC2086
$DANE_MONITOR rollover status --mx "$DANE_MX_HOST" --next-cert "$CERT_FULLCHAIN_PATH" \
    $DANE_DNS_OPTS $DANE_ROLLOVER_OPTS
case $? in
0) ;;
1)
    echo "acme-dane: not deployed yet: run this again later" >&2
    exit 75
    ;;
*)
    echo "acme-dane: not deployed: do what the lines above say, then run this again" >&2
    exit 1
    ;;
esac
umask 077
cp "$CERT_KEY_PATH" "$DANE_DEPLOY_DIR/privkey.pem.new" &&
    cp "$CERT_FULLCHAIN_PATH" "$DANE_DEPLOY_DIR/fullchain.pem.new" &&
    mv "$DANE_DEPLOY_DIR/privkey.pem.new" "$DANE_DEPLOY_DIR/privkey.pem" &&
    mv "$DANE_DEPLOY_DIR/fullchain.pem.new" "$DANE_DEPLOY_DIR/fullchain.pem" || exit 1
sh -c "$DANE_RELOAD" || exit 1
echo "acme-dane: deployed on $DANE_MX_HOST; remove the old key's records when" \
    "'dane-monitor rollover status' says stage 5"
