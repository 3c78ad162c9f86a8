#!/usr/bin/env bash
# Copied from the team's shared recipes (shared/recipes/ceph-rgw.sh) so the tests do not depend
# on a folder outside the repository; keep the two in step.
# A real single-node Ceph cluster with the RGW S3 API on loopback, for tests and benchmarks.
#
#   ceph-rgw.sh start DIR [RGW_PORT] [MON_PORT]   boot; prints the S3 settings as shell exports
#   ceph-rgw.sh stop DIR                          stop every daemon started under DIR (by PID)
#
# Needs root and Debian's packages (about 30 s to install):
#   apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime
# One monitor, one OSD on memstore (objects live in memory, 2 GiB cap unless
# CEPH_MEMSTORE_BYTES says otherwise), one manager,
# one radosgw; authentication between daemons off, S3 access by the key pair below.
# Boots in 15-40 s on a 2-core machine; all state is under DIR. Use free ports: a daemon
# left from an earlier run on the same ports makes the new OSD fail with "wrong fsid".
set -euo pipefail
cmd=${1:?start|stop}; D=${2:?state directory}
RGW_PORT=${3:-7480}; MON_PORT=${4:-6789}
ACCESS_KEY=${CEPH_RGW_ACCESS_KEY:-DFOSTESTKEY}
SECRET_KEY=${CEPH_RGW_SECRET_KEY:-DFOSTESTSECRET}

if [ "$cmd" = stop ]; then
  for f in "$D"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f"); kill "$pid" 2>/dev/null || true
  done
  for f in "$D"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true; rm -f "$f"
  done
  exit 0
fi

rm -rf "$D"; mkdir -p "$D/mon" "$D/osd0" "$D/run" "$D/log" "$D/rgw"
FSID=$(uuidgen)
C=$D/ceph.conf
cat > "$C" <<CONF
[global]
fsid = $FSID
mon host = 127.0.0.1:$MON_PORT
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
run dir = $D/run
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-2147483648}
ms bind ipv4 = true
ms bind ipv6 = false
# With a monitor on a port other than 6789 only msgr2 is spoken, and radosgw's default
# secure mon-client mode then fails with auth 'none' (-13); crc mode works on any port.
ms mon client mode = crc
[mon.a]
mon data = $D/mon
public addr = 127.0.0.1:$MON_PORT
[osd.0]
osd data = $D/osd0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw
CONF
{
  ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. --cap mon 'allow *'
  monmaptool --create --add a "127.0.0.1:$MON_PORT" --fsid "$FSID" "$D/monmap"
  ceph-mon -c "$C" --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring"
  ceph-mon -c "$C" -i a
  for _ in $(seq 100); do ceph -c "$C" --connect-timeout 5 -s >/dev/null 2>&1 && break; sleep 0.2; done
  ceph -c "$C" osd create
  ceph-osd -c "$C" -i 0 --mkfs
  ceph-osd -c "$C" -i 0
  ceph -c "$C" osd crush add osd.0 1.0 host=localhost root=default || true
  ceph-mgr -c "$C" -i x || true
  radosgw -c "$C" -n client.rgw.a
} >"$D/log/boot.log" 2>&1
# radosgw answers once its pools exist.
for _ in $(seq 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RGW_PORT/" || true)
  [ "$code" = 200 ] && break; sleep 0.2
done
[ "$code" = 200 ] || { echo "radosgw did not answer on 127.0.0.1:$RGW_PORT (see $D/log)" >&2; exit 1; }
radosgw-admin -c "$C" user create --uid=dfos --display-name=dfos \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>&1 || true
echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=us-east-1 DFOS_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT"
