#!/usr/bin/env bash
# Vagrant provisioning, the control plane, as root, after common.sh: `kubeadm init` on the
# private network address, a CNI (Flannel or Calico, the upstream release manifest, which
# the VM downloads), Ready, then a fresh join command written to the shared folder for the
# workers (mode 0600; a bootstrap token valid for 24 h).
#
# Usage: control-plane.sh NODE_IP POD_CIDR NET_PREFIX CNI CNI_VERSION JOIN_FILE
#   control-plane.sh 192.168.56.10 10.244.0.0/16 192.168.56 flannel v0.26.1 \
#     /vagrant/.vagrant/nodeops/join-command
#
# Safe to run again: an initialised control plane is not initialised twice; the CNI manifest
# is applied again (kubectl apply) and a new join command is written.
set -euo pipefail

usage="usage: control-plane.sh NODE_IP POD_CIDR NET_PREFIX CNI CNI_VERSION JOIN_FILE"
node_ip=${1:?$usage}
pod_cidr=${2:?$usage}
net_prefix=${3:?$usage}
cni=${4:?$usage}
cni_version=${5:?$usage}
join_file=${6:?$usage}

die() { printf 'control-plane.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*"; }

[[ $node_ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "node address $node_ip is not IPv4"
[[ $pod_cidr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]] || die "pod network $pod_cidr is not a CIDR"
[[ $net_prefix =~ ^[0-9]{1,3}(\.[0-9]{1,3}){2}$ ]] || die "network prefix $net_prefix is not 3 octets"
[[ $cni_version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "CNI version $cni_version is not like v1.2.3"
[[ $join_file == /* ]] || die "join file $join_file is not an absolute path"

export KUBECONFIG=/etc/kubernetes/admin.conf
node=$(hostname -s)

if [ -f "$KUBECONFIG" ]; then
  log "$node is already a control plane: kubeadm init skipped"
else
  version=$(kubeadm version -o short)
  log "kubeadm init $version on $node_ip, pods in $pod_cidr"
  # --kubernetes-version: the installed kubeadm's, not the newest release kubeadm would look up.
  kubeadm init \
    --apiserver-advertise-address "$node_ip" \
    --pod-network-cidr "$pod_cidr" \
    --kubernetes-version "$version" \
    --node-name "$node"
fi

# kubectl for the vagrant user too (`vagrant ssh cp1 -- kubectl get nodes`).
if id vagrant >/dev/null 2>&1; then
  install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.kube
  install -m 0600 -o vagrant -g vagrant "$KUBECONFIG" /home/vagrant/.kube/config
fi

manifest=$(mktemp)
trap 'rm -f "$manifest"' EXIT
case $cni in
  flannel)
    url="https://github.com/flannel-io/flannel/releases/download/$cni_version/kube-flannel.yml"
    log "Flannel $cni_version from $url"
    curl -fsSL --retry 5 -o "$manifest" "$url"
    # Every VM has the same NAT address on its first interface; flannel must use the private
    # network. --iface-regex matches interface names and addresses.
    iface_arg="--iface-regex=^${net_prefix//./\\.}\\.[0-9]+\$"
    IFACE_ARG=$iface_arg awk '
      { print }
      /^[[:space:]]*- --kube-subnet-mgr[[:space:]]*$/ {
        match($0, /^[[:space:]]*/)
        printf "%s- %s\n", substr($0, 1, RLENGTH), ENVIRON["IFACE_ARG"]
      }' "$manifest" >"$manifest.new"
    mv "$manifest.new" "$manifest"
    grep -qF -- "$iface_arg" "$manifest" || die "could not add $iface_arg to $url"
    # The manifest's network is 10.244.0.0/16; follow --pod-network-cidr.
    sed -i "s#\"Network\": \"10.244.0.0/16\"#\"Network\": \"$pod_cidr\"#" "$manifest"
    grep -qF "\"Network\": \"$pod_cidr\"" "$manifest" || die "could not set the pod network in $url"
    kubectl apply -f "$manifest"
    ;;
  calico)
    url="https://raw.githubusercontent.com/projectcalico/calico/$cni_version/manifests/calico.yaml"
    log "Calico $cni_version from $url"
    curl -fsSL --retry 5 -o "$manifest" "$url"
    kubectl apply -f "$manifest"
    # Calico reads the pod CIDR from kubeadm's configuration; the node address must come
    # from the private network, not the NAT interface.
    kubectl -n kube-system set env daemonset/calico-node \
      "IP_AUTODETECTION_METHOD=cidr=${net_prefix}.0/24"
    ;;
  *) die "CNI $cni is not flannel or calico" ;;
esac

log "waiting for $node to be Ready"
kubectl wait --for=condition=Ready "node/$node" --timeout=600s

log "join command -> $join_file"
join_dir=$(dirname "$join_file")
mkdir -p "$join_dir"
# VirtualBox shared folders may not keep modes; NFS and local directories do.
chmod 0700 "$join_dir" 2>/dev/null || log "note: $join_dir keeps the shared folder's modes"
(
  umask 077
  kubeadm token create --print-join-command >"$join_file.new"
)
mv "$join_file.new" "$join_file"
kubectl get nodes -o wide
