// The simulated tools. SIM_TOOLS are on every lab host from the start (the lab writes their wrappers);
// SIM_PACKAGE_TOOLS appear only when the sim's apt-get installs the package that ships them.
export const SIM_TOOLS: string[] = [
  'systemctl', 'modprobe', 'lsmod', 'sysctl', 'swapoff', 'swapon', 'apt-get', 'apt-cache', 'apt-mark', 'dpkg-query',
  'curl', 'gpg', 'ufw', 'netplan', 'iptables', 'ip6tables', 'iptables-save', 'iptables-restore', 'reboot', 'shutdown',
];

export const SIM_PACKAGE_TOOLS: string[] = ['kubeadm', 'kubelet', 'kubectl', 'crictl', 'containerd', 'ctr', 'ipvsadm', 'ipset', 'conntrack', 'socat', 'etcdctl'];
