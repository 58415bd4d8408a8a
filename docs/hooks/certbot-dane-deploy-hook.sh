#!/bin/sh
# certbot deploy hook: put a renewed certificate in front of senders only when DANE
# senders will accept its key (dane-monitor rollover status, docs/rollover.md).
#
#   certbot renew --deploy-hook /usr/local/bin/certbot-dane-deploy-hook.sh
#
# certbot has already written the new files to $RENEWED_LINEAGE; the mail server reads
# copies in DANE_DEPLOY_DIR, which this hook replaces (then runs DANE_RELOAD) once
# 'rollover status' says stage 4 (safe to deploy) or 6 (done). Until then the renewal
# waits in $RENEWED_LINEAGE: run this hook again from cron (same environment, with
# RENEWED_LINEAGE=/etc/letsencrypt/live/NAME) until it deploys.
#
# Environment:
#   DANE_MX_HOST       the MX host this certificate is for (required)
#   DANE_DEPLOY_DIR    where the mail server reads fullchain.pem and privkey.pem (required)
#   DANE_RELOAD        command that makes the mail server load them
#                      (default: systemctl reload postfix)
#   DANE_MONITOR       the dane-monitor command (default: dane-monitor)
#   DANE_DNS_OPTS      its DNS options, e.g. --resolver 127.0.0.1
#   DANE_ROLLOVER_OPTS more options for 'rollover status', e.g. --state FILE
#
# Exit: 0 deployed (or nothing to do), 75 wait and run again later (EX_TEMPFAIL),
# 1 act first: publish the record the output names, or DNS cannot tell.
set -u
: "${RENEWED_LINEAGE:?run by certbot as a deploy hook (or set RENEWED_LINEAGE)}"
: "${DANE_MX_HOST:?set DANE_MX_HOST to the MX host name}"
: "${DANE_DEPLOY_DIR:?set DANE_DEPLOY_DIR to where the mail server reads its certificate}"
DANE_RELOAD=${DANE_RELOAD:-systemctl reload postfix}
DANE_MONITOR=${DANE_MONITOR:-dane-monitor}
DANE_DNS_OPTS=${DANE_DNS_OPTS:-}
DANE_ROLLOVER_OPTS=${DANE_ROLLOVER_OPTS:-}

new_chain=$RENEWED_LINEAGE/fullchain.pem
new_key=$RENEWED_LINEAGE/privkey.pem
if cmp -s "$new_chain" "$DANE_DEPLOY_DIR/fullchain.pem"; then
    echo "certbot-dane: $DANE_MX_HOST already has this certificate"
    exit 0
fi

# shellcheck disable=SC2086  # DANE_MONITOR and the *_OPTS are word lists
$DANE_MONITOR rollover status --mx "$DANE_MX_HOST" --next-cert "$new_chain" \
    $DANE_DNS_OPTS $DANE_ROLLOVER_OPTS
case $? in
0)
    umask 077
    cp "$new_key" "$DANE_DEPLOY_DIR/privkey.pem.new" &&
        cp "$new_chain" "$DANE_DEPLOY_DIR/fullchain.pem.new" &&
        mv "$DANE_DEPLOY_DIR/privkey.pem.new" "$DANE_DEPLOY_DIR/privkey.pem" &&
        mv "$DANE_DEPLOY_DIR/fullchain.pem.new" "$DANE_DEPLOY_DIR/fullchain.pem" || exit 1
    sh -c "$DANE_RELOAD" || exit 1
    echo "certbot-dane: deployed on $DANE_MX_HOST; remove the old key's records when" \
        "'dane-monitor rollover status' says stage 5"
    exit 0
    ;;
1)
    echo "certbot-dane: not deployed yet: run this hook again later" >&2
    exit 75
    ;;
*)
    echo "certbot-dane: not deployed: do what the lines above say, then run this hook again" >&2
    exit 1
    ;;
esac
