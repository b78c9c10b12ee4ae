#!/usr/bin/env bash
# Vagrant provisioning, every node, as root: the kubeadm docs' "Installing kubeadm" on
# Ubuntu/Debian (apt) or Rocky/RHEL (dnf): swap off, kernel modules and sysctls, containerd
# with the systemd cgroup driver, kubelet/kubeadm/kubectl of one minor from pkgs.k8s.io,
# held (apt-mark hold; on RHEL the repo's exclude= line). On Rocky also SELinux permissive
# and firewalld opened for the cluster.
#
# Usage: common.sh MINOR NODE_IP ROLE NODE_CIDR POD_CIDR
#   common.sh 1.32 192.168.56.10 control-plane 192.168.56.0/24 10.244.0.0/16
#
# Safe to run again (`vagrant provision`): once the kube packages are installed, their
# versions belong to nodeops (upgrades); this script never changes them again.
set -euo pipefail

usage="usage: common.sh MINOR NODE_IP ROLE NODE_CIDR POD_CIDR"
minor=${1:?$usage}
node_ip=${2:?$usage}
role=${3:?$usage}
node_cidr=${4:?$usage}
pod_cidr=${5:?$usage}

die() { printf 'common.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*"; }

ipv4='[0-9]{1,3}(\.[0-9]{1,3}){3}'
[[ $minor =~ ^1\.[0-9]{2}$ ]] || die "minor $minor is not like 1.32"
[[ $node_ip =~ ^${ipv4}$ ]] || die "node address $node_ip is not an IPv4 address"
[[ $node_cidr =~ ^${ipv4}/[0-9]{1,2}$ ]] || die "node network $node_cidr is not a CIDR"
[[ $pod_cidr =~ ^${ipv4}/[0-9]{1,2}$ ]] || die "pod network $pod_cidr is not a CIDR"
case $role in
  control-plane | worker) ;;
  *) die "role $role is not control-plane or worker" ;;
esac

# shellcheck source=/dev/null
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "* | *" ubuntu "*) family=debian ;;
  *" rhel "* | *" centos "* | *" fedora "*) family=rhel ;;
  *) die "unsupported OS: ${PRETTY_NAME:-unknown} (Ubuntu/Debian or Rocky/RHEL)" ;;
esac
log "$(hostname -s): ${PRETTY_NAME:-$ID}, $family family, Kubernetes v$minor, $role"

repo="https://pkgs.k8s.io/core:/stable:/v${minor}"
kube_packages=(kubelet kubeadm kubectl)

# --- swap, kernel modules, sysctls (kubeadm preflight and the CNI need them) ---------------
log "swap off"
swapoff -a
sed -ri '/^[^#].*[[:space:]]swap[[:space:]]/ s/^/# (nodeops vagrant: swap off) /' /etc/fstab

log "kernel modules and sysctls"
cat >/etc/modules-load.d/k8s.conf <<'EOF'
overlay
br_netfilter
EOF
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/k8s.conf <<'EOF'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
EOF
sysctl --system >/dev/null

# --- packages --------------------------------------------------------------------------------
apt_get() {
  # Wait for the dpkg lock (cloud images run unattended-upgrades at first boot).
  DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 "$@"
}

kube_installed() {
  if [ "$family" = debian ]; then
    dpkg-query -W -f '${Status}' kubeadm 2>/dev/null | grep -q 'install ok installed'
  else
    rpm -q kubeadm >/dev/null 2>&1
  fi
}

install_debian() {
  log "containerd (Ubuntu/Debian package) and the pkgs.k8s.io v$minor apt repository"
  apt_get update
  apt_get install apt-transport-https ca-certificates curl gpg containerd
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL "$repo/deb/Release.key" | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
  echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $repo/deb/ /" \
    >/etc/apt/sources.list.d/kubernetes.list
  apt_get update
  log "install and hold ${kube_packages[*]}"
  apt_get install "${kube_packages[@]}"
  apt-mark hold "${kube_packages[@]}"
}

install_rhel() {
  log "SELinux permissive (as the kubeadm docs do)"
  if [ "$(getenforce 2>/dev/null || echo Disabled)" = Enforcing ]; then
    setenforce 0
  fi
  sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config

  log "containerd.io from Docker's repository and the pkgs.k8s.io v$minor yum repository"
  dnf -y -q install dnf-plugins-core iproute-tc
  dnf config-manager --add-repo https://download.docker.com/linux/centos/docker-ce.repo
  dnf -y -q install containerd.io
  # exclude= is the hold: a plain `dnf upgrade` leaves the kube packages alone.
  cat >/etc/yum.repos.d/kubernetes.repo <<EOF
[kubernetes]
name=Kubernetes
baseurl=$repo/rpm/
enabled=1
gpgcheck=1
gpgkey=$repo/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
EOF
  log "install ${kube_packages[*]} (held by the repo's exclude=)"
  dnf -y -q install "${kube_packages[@]}" --disableexcludes=kubernetes
}

if kube_installed; then
  log "kube packages already installed: left as they are (nodeops manages their versions)"
else
  "install_$family"
fi

# --- containerd: the systemd cgroup driver and kubeadm's pause image --------------------------
config=/etc/containerd/config.toml
marker="# written by nodeops vagrant/common.sh"
if ! grep -qF "$marker" "$config" 2>/dev/null; then
  log "containerd configuration (SystemdCgroup = true)"
  install -d -m 0755 /etc/containerd
  {
    echo "$marker"
    containerd config default
  } >"$config.new"
  # containerd 1.x and 2.x both name it SystemdCgroup.
  sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' "$config.new"
  grep -q 'SystemdCgroup = true' "$config.new" || die "could not set SystemdCgroup in $config"
  pause=$(kubeadm config images list --kubernetes-version "$(kubeadm version -o short)" 2>/dev/null |
    grep '/pause:' || true)
  if [ -n "$pause" ]; then
    # 1.x: sandbox_image = "..."; 2.x: sandbox = '...'
    sed -ri "s#^([[:space:]]*(sandbox_image|sandbox)) = [\"'][^\"']*[\"']#\\1 = \"$pause\"#" "$config.new"
  fi
  mv "$config.new" "$config"
fi
cat >/etc/crictl.yaml <<'EOF'
runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock
EOF
systemctl enable containerd >/dev/null 2>&1
systemctl restart containerd

# --- kubelet: the private network address, not the NAT one every VM shares ------------------
if [ "$family" = debian ]; then
  kubelet_env=/etc/default/kubelet
else
  kubelet_env=/etc/sysconfig/kubelet
fi
echo "KUBELET_EXTRA_ARGS=--node-ip=$node_ip" >"$kubelet_env"
# It restarts every few seconds until kubeadm init/join gives it a configuration.
systemctl enable --now kubelet >/dev/null 2>&1

# --- firewalld (Rocky): the kubeadm docs' ports, and the node and pod networks trusted -------
if systemctl is-active --quiet firewalld 2>/dev/null; then
  log "firewalld: ports for a $role, $node_cidr and $pod_cidr trusted"
  if [ "$role" = control-plane ]; then
    ports=(6443/tcp 2379-2380/tcp 10250/tcp 10259/tcp 10257/tcp)
  else
    ports=(10250/tcp 10256/tcp 30000-32767/tcp)
  fi
  for port in "${ports[@]}"; do
    firewall-cmd --quiet --permanent --add-port="$port"
  done
  # Node to node (CNI encapsulation: flannel VXLAN, Calico IP-in-IP/BGP) and pod traffic.
  firewall-cmd --quiet --permanent --zone=trusted --add-source="$node_cidr"
  firewall-cmd --quiet --permanent --zone=trusted --add-source="$pod_cidr"
  firewall-cmd --quiet --reload
fi

log "$(hostname -s) ready for kubeadm: $(kubeadm version -o short), containerd $(containerd --version | awk '{print $3}')"
