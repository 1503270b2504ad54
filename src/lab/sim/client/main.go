// kha-sim-client: what a simulated tool on a lab host runs. It hands the call (argv, env, pid, uid) to the
// host's resident sim server over a unix socket and relays stdout, stderr, stdin (only when the tool asks
// for it) and the exit code, so a command costs a few milliseconds instead of a Node start-up.
// When the server is not there (not started, or the caller is not root) it execs the tool directly.
//
// Usage: kha-sim-client NODE MAIN TOOL [ARGS...]
//
//	or as the interpreter of a wrapper script (#!/path/kha-sim-client --wrapper): the tool is the script's
//	name, and without a server the script itself runs under /bin/sh (its last line starts the tool).
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

const defaultSocket = "/run/kha-sim-server.sock"

type header struct {
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env"`
	Pid  int               `json:"pid"`
	Uid  int               `json:"uid"`
	Tty  bool              `json:"tty"`
}

func isTTY(fd int) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), uintptr(syscall.TCGETS), uintptr(unsafe.Pointer(&t)))
	return e == 0
}

func fallback(node, main string, rest []string) {
	argv := append([]string{node, main}, rest...)
	err := syscall.Exec(node, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "kha-sim-client: exec %s: %v\n", node, err)
	os.Exit(127)
}

var writeMu sync.Mutex

func sendFrame(w io.Writer, kind byte, payload []byte) error {
	writeMu.Lock()
	defer writeMu.Unlock()
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func main() {
	// A unix socket file that nobody answers on (a daemon's socket, e.g. containerd's): bind, then exit
	// without closing, so the file stays.
	if len(os.Args) == 3 && os.Args[1] == "--make-socket" {
		if _, err := net.Listen("unix", os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "kha-sim-client: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	var rest []string
	var runAlone func()
	if len(os.Args) >= 3 && os.Args[1] == "--wrapper" {
		script := os.Args[2]
		rest = append([]string{filepath.Base(script)}, os.Args[3:]...)
		runAlone = func() {
			err := syscall.Exec("/bin/sh", append([]string{"sh", script}, os.Args[3:]...), os.Environ())
			fmt.Fprintf(os.Stderr, "kha-sim-client: exec /bin/sh %s: %v\n", script, err)
			os.Exit(127)
		}
	} else if len(os.Args) >= 4 {
		node, mainJs := os.Args[1], os.Args[2]
		rest = os.Args[3:]
		runAlone = func() { fallback(node, mainJs, rest) }
	} else {
		fmt.Fprintln(os.Stderr, "usage: kha-sim-client NODE MAIN TOOL [ARGS...] | --wrapper SCRIPT [ARGS...]")
		os.Exit(2)
	}
	sock := os.Getenv("KHA_SIM_SOCKET")
	if sock == "" {
		sock = defaultSocket
	}
	if os.Getenv("KHA_SIM_NO_SERVER") == "1" {
		runAlone()
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		runAlone()
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if i := strings.IndexByte(kv, '='); i > 0 {
			env[kv[:i]] = kv[i+1:]
		}
	}
	h, _ := json.Marshal(header{Argv: rest, Env: env, Pid: os.Getpid(), Uid: os.Getuid(), Tty: isTTY(0)})
	if err := sendFrame(conn, 'h', h); err != nil {
		// The server went away between connect and send: run the tool here instead.
		runAlone()
	}
	r := bufio.NewReaderSize(conn, 64*1024)
	stdinSent := false
	for {
		var fh [5]byte
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			fmt.Fprintf(os.Stderr, "kha-sim-client: the sim server closed the call to %s without an exit code\n", rest[0])
			os.Exit(70)
		}
		payload := make([]byte, binary.BigEndian.Uint32(fh[1:]))
		if _, err := io.ReadFull(r, payload); err != nil {
			fmt.Fprintln(os.Stderr, "kha-sim-client: truncated frame from the sim server")
			os.Exit(70)
		}
		switch fh[0] {
		case 'o':
			os.Stdout.Write(payload)
		case 'e':
			os.Stderr.Write(payload)
		case 'i':
			if !stdinSent {
				stdinSent = true
				go func() {
					buf := make([]byte, 64*1024)
					for {
						n, err := os.Stdin.Read(buf)
						if n > 0 {
							if sendFrame(conn, 'i', buf[:n]) != nil {
								return
							}
						}
						if err != nil {
							sendFrame(conn, 'I', nil)
							return
						}
					}
				}()
			}
		case 'x':
			code, err := strconv.Atoi(string(payload))
			if err != nil {
				code = 70
			}
			os.Exit(code)
		}
	}
}
