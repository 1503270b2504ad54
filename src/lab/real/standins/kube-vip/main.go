// Stand-in for kube-vip in the lab's real tier (kube-vip itself cannot be built here). It keeps the contract
// kha's static pod manifest relies on: the same environment variables, Lease leader election against the
// real API server through the kubeconfig the manifest mounts (admin.conf or super-admin.conf, reached as
// https://kubernetes:<port>), the VIP added to vip_interface as a /32 while leading, with gratuitous ARP,
// and removed when leadership is lost or the pod stops.
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func seconds(name string, def int) time.Duration {
	n, err := strconv.Atoi(env(name, strconv.Itoa(def)))
	if err != nil || n <= 0 {
		n = def
	}
	return time.Duration(n) * time.Second
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format(time.RFC3339)+" kube-vip(lab): "+format+"\n", args...)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("kube-vip lab stand-in")
		return
	}
	vip := net.ParseIP(env("address", "")).To4()
	ifName := env("vip_interface", "")
	node := env("vip_nodename", "")
	if vip == nil || ifName == "" || node == "" {
		logf("address, vip_interface and vip_nodename are required")
		os.Exit(2)
	}
	kubeconfig := env("k8s_config_file", "/etc/kubernetes/admin.conf")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		logf("kubeconfig %s: %v", kubeconfig, err)
		os.Exit(1)
	}
	// Like kube-vip: talk to the local API server, not to the VIP it is about to hold.
	cfg.Host = "https://kubernetes:" + env("port", "6443")
	cfg.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		logf("client: %v", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; cancel() }()

	link, err := net.InterfaceByName(ifName)
	if err != nil {
		logf("interface %s: %v", ifName, err)
		os.Exit(1)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  v1.ObjectMeta{Name: env("vip_leasename", "plndr-cp-lock"), Namespace: env("cp_namespace", "kube-system")},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: node},
	}
	logf("starting: vip %s on %s, node %s, kubeconfig %s", vip, ifName, node, kubeconfig)
	// Election errors (403 before kubeadm binds admin.conf's group, a learner etcd) are retried, as kube-vip does.
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   seconds("vip_leaseduration", 5),
			RenewDeadline:   seconds("vip_renewdeadline", 3),
			RetryPeriod:     seconds("vip_retryperiod", 1),
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) { lead(lctx, link, vip) },
				OnStoppedLeading: func() { release(link, vip) },
				OnNewLeader:      func(id string) { logf("leader is %s", id) },
			},
		})
		release(link, vip)
	}
	release(link, vip)
}

// lead holds the VIP until the context ends, announcing it every few seconds.
func lead(ctx context.Context, link *net.Interface, vip net.IP) {
	if err := addrChange(unix.RTM_NEWADDR, link, vip); err != nil && err != unix.EEXIST {
		logf("add %s/32 to %s: %v", vip, link.Name, err)
	} else {
		logf("holding %s on %s", vip, link.Name)
	}
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		if err := gratuitousARP(link, vip); err != nil {
			logf("gratuitous ARP: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func release(link *net.Interface, vip net.IP) {
	if err := addrChange(unix.RTM_DELADDR, link, vip); err == nil {
		logf("released %s from %s", vip, link.Name)
	}
}

// addrChange adds or deletes vip/32 on the link over rtnetlink.
func addrChange(op uint16, link *net.Interface, vip net.IP) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	if op == unix.RTM_NEWADDR {
		flags |= unix.NLM_F_CREATE | unix.NLM_F_EXCL
	}
	attr := func(typ uint16, data []byte) []byte {
		b := make([]byte, 4, 8)
		binary.LittleEndian.PutUint16(b[0:], uint16(4+len(data)))
		binary.LittleEndian.PutUint16(b[2:], typ)
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	body := []byte{unix.AF_INET, 32, 0, unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(body[4:], uint32(link.Index))
	body = append(body, attr(unix.IFA_LOCAL, vip)...)
	body = append(body, attr(unix.IFA_ADDRESS, vip)...)
	msg := make([]byte, 16, 16+len(body))
	binary.LittleEndian.PutUint32(msg[0:], uint32(16+len(body)))
	binary.LittleEndian.PutUint16(msg[4:], op)
	binary.LittleEndian.PutUint16(msg[6:], flags)
	binary.LittleEndian.PutUint32(msg[8:], 1)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n >= 20 && binary.LittleEndian.Uint16(buf[4:]) == unix.NLMSG_ERROR {
		if code := int32(binary.LittleEndian.Uint32(buf[16:])); code != 0 {
			return syscall.Errno(-code)
		}
	}
	return nil
}

// gratuitousARP broadcasts "vip is at my MAC" so neighbours update their caches after a failover.
func gratuitousARP(link *net.Interface, vip net.IP) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	mac := link.HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("interface %s has no Ethernet address", link.Name)
	}
	pkt := []byte{0, 1, 8, 0, 6, 4, 0, 1} // Ethernet, IPv4, request
	pkt = append(pkt, mac...)
	pkt = append(pkt, vip...)
	pkt = append(pkt, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	pkt = append(pkt, vip...)
	addr := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: link.Index, Halen: 6}
	copy(addr.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	return unix.Sendto(fd, pkt, 0, addr)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
