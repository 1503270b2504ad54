// Stand-in for calico-node in the lab's real tier (Calico's images cannot be built here). It does the part
// the kubelet and kha can see: as a hostNetwork DaemonSet pod it installs a CNI configuration (bridge with
// host-local addresses from a per-node block of CALICO_IPV4POOL_CIDR) and the plugins it ships, so the
// container runtime reports the network ready and the Node turns Ready. No routing between nodes.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format(time.RFC3339)+" calico-node(lab): "+format+"\n", args...)
}

// nodeBlock is the /24 of the pool picked by the node address's last octet.
func nodeBlock(pool string, nodeIP net.IP) (string, error) {
	_, n, err := net.ParseCIDR(pool)
	if err != nil {
		return "", err
	}
	ones, _ := n.Mask.Size()
	if ones > 16 {
		return "", fmt.Errorf("pool %s is smaller than a /16", pool)
	}
	ip := n.IP.To4()
	if ip == nil || nodeIP.To4() == nil {
		return "", fmt.Errorf("IPv4 only")
	}
	return fmt.Sprintf("%d.%d.%d.0/24", ip[0], ip[1], nodeIP.To4()[3]), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func main() {
	host := os.Getenv("HOST_ROOT")
	if host == "" {
		host = "/host"
	}
	pool := os.Getenv("CALICO_IPV4POOL_CIDR")
	if pool == "" {
		pool = "192.168.0.0/16"
	}
	nodeIP := net.ParseIP(os.Getenv("NODE_IP"))
	block, err := nodeBlock(pool, nodeIP)
	if err != nil {
		logf("pod block: %v", err)
		os.Exit(1)
	}
	binDir := filepath.Join(host, "opt/cni/bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	plugins, _ := filepath.Glob("/opt/cni/bin/*")
	for _, p := range plugins {
		if err := copyFile(p, filepath.Join(binDir, filepath.Base(p))); err != nil {
			logf("install %s: %v", p, err)
			os.Exit(1)
		}
	}
	conf := fmt.Sprintf(`{
  "name": "k8s-pod-network",
  "cniVersion": "0.4.0",
  "plugins": [
    {"type": "bridge", "bridge": "cali0", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, block)
	netDir := filepath.Join(host, "etc/cni/net.d")
	if err := os.MkdirAll(netDir, 0o755); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	target := filepath.Join(netDir, "10-calico.conflist")
	if err := os.WriteFile(target+".tmp", []byte(conf), 0o644); err == nil {
		err = os.Rename(target+".tmp", target)
	}
	if err != nil {
		logf("write %s: %v", target, err)
		os.Exit(1)
	}
	logf("CNI configuration for %s installed (%d plugins)", block, len(plugins))
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
}
