#!/usr/bin/env bash
# Vagrant provisioning, a worker, as root, after common.sh: wait for the join command the
# control plane writes to the shared folder, check its form, and `kubeadm join`.
#
# Usage: worker.sh JOIN_FILE [WAIT_SECONDS]
#   worker.sh /vagrant/.vagrant/nodeops/join-command 1800
#
# The file is read as data, never run: only `kubeadm join ADDRESS:PORT --token T
# --discovery-token-ca-cert-hash sha256:H` is accepted. Safe to run again: a node that has
# joined is left alone.
set -euo pipefail

usage="usage: worker.sh JOIN_FILE [WAIT_SECONDS]"
join_file=${1:?$usage}
wait_seconds=${2:-1800}

die() { printf 'worker.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*"; }

[[ $wait_seconds =~ ^[0-9]+$ ]] || die "wait $wait_seconds is not a number of seconds"
node=$(hostname -s)

if [ -f /etc/kubernetes/kubelet.conf ]; then
  log "$node has already joined a cluster: kubeadm join skipped"
  exit 0
fi

# With libvirt, `vagrant up` brings machines up in parallel: the control plane may still be
# at work.
log "waiting up to ${wait_seconds}s for $join_file (written by the control plane)"
waited=0
until [ -s "$join_file" ]; do
  if [ "$waited" -ge "$wait_seconds" ]; then
    die "no join command in $join_file after ${wait_seconds}s; is cp1 provisioned? (vagrant provision cp1)"
  fi
  sleep 10
  waited=$((waited + 10))
  if [ $((waited % 60)) -eq 0 ]; then
    log "still waiting (${waited}s)"
  fi
done

read -r line <"$join_file" || true
pattern='^kubeadm join ([0-9]{1,3}(\.[0-9]{1,3}){3}:[0-9]{1,5}) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})[[:space:]]*$'
if ! [[ $line =~ $pattern ]]; then
  die "$join_file does not hold a plain kubeadm join command"
fi
endpoint=${BASH_REMATCH[1]}
token=${BASH_REMATCH[3]}
ca_hash=${BASH_REMATCH[4]}

log "kubeadm join $endpoint as $node"
kubeadm join "$endpoint" \
  --token "$token" \
  --discovery-token-ca-cert-hash "$ca_hash" \
  --node-name "$node"
log "$node joined; \`vagrant ssh cp1 -- kubectl get nodes\` shows it"
