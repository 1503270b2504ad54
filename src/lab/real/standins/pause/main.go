// The pod sandbox's process for the lab's images: waits for a signal and reaps children, like pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// kubeadm upgrade's health check runs a Job of "pause -v" and waits for it to complete.
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("pause (kha lab stand-in)\n")
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
	}
}
