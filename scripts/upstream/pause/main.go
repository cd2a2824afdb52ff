// Command pause is the sandbox ("infra") container of every pod, as
// kubernetes/build/pause does it: it holds the pod's namespaces open, reaps
// zombie children (it is PID 1 when the pod shares its PID namespace), and
// exits 0 on SIGINT or SIGTERM. Built static (CGO_ENABLED=0) by
// scripts/upstream/build.sh into the offline upstream's pause image.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set with -ldflags -X main.version=3.10.
var version = "devel"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.go version: %s (kubebake offline upstream build)\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		default:
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
			os.Exit(0)
		}
	}
}
