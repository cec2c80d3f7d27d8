#!/bin/sh
# One PostgreSQL member of the cluster under Patroni: NAME is its service
# name on the compose network (its address for clients and for the other
# member), ETCD the etcd service's host:port, DB_PASSWORD the password of
# the superuser remhsm and the replication user (a development value the
# compose file sets; give your own). Patroni makes the database on first
# start, or a replica of the member that holds the leader key.
set -eu
conf=/tmp/patroni.yml
cat >"$conf" <<YAML
scope: remhsm
name: $NAME
restapi:
  listen: 0.0.0.0:8008
  connect_address: $NAME:8008
etcd3:
  hosts: [$ETCD]
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
  initdb: [{auth: scram-sha-256}]
  pg_hba:
    - local all all scram-sha-256
    - host all all 0.0.0.0/0 scram-sha-256
    - host replication replicator 0.0.0.0/0 scram-sha-256
postgresql:
  listen: 0.0.0.0:5432
  connect_address: $NAME:5432
  data_dir: /var/lib/postgresql/patroni/data
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /tmp/pgpass
  authentication:
    superuser: {username: remhsm, password: '$DB_PASSWORD'}
    replication: {username: replicator, password: '$DB_PASSWORD'}
  parameters:
    unix_socket_directories: /tmp
YAML
chmod 600 "$conf"
exec patroni "$conf"
