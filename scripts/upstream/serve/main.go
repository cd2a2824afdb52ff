// Command serve is the offline upstream's download site: it serves
// <cache>/www (the original URLs with the scheme stripped, e.g.
// www/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet) over plain HTTP on
// 127.0.0.1, with Range requests (http.FileServer → http.ServeContent), one
// log line per request, a PID file, and a clean stop on SIGINT/SIGTERM.
// Standard library only; started by scripts/upstream/serve.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type recorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.n += int64(n)
	return n, err
}

func main() {
	root := flag.String("root", "", "directory to serve (<cache>/www)")
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	pidFile := flag.String("pidfile", "", "write the PID here (removed on exit)")
	flag.Parse()
	if *root == "" {
		log.Fatal("serve: -root is required")
	}
	if st, err := os.Stat(*root); err != nil || !st.IsDir() {
		log.Fatalf("serve: %s is not a directory (run scripts/upstream/build.sh first)", *root)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("serve: %v", err)
	}
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Fatalf("serve: %v", err)
		}
		defer os.Remove(*pidFile)
	}
	files := http.FileServer(http.Dir(*root))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		// api.github.com answers JSON; the stored files have no extension.
		if strings.HasPrefix(r.URL.Path, "/api.github.com/") {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		files.ServeHTTP(rec, r)
		rng := r.Header.Get("Range")
		if rng != "" {
			rng = " range=" + rng
		}
		log.Printf("%s %s %s %d %dB %s%s", r.RemoteAddr, r.Method, r.URL.Path, rec.status, rec.n,
			time.Since(start).Round(time.Microsecond), rng)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	abs, _ := filepath.Abs(*root)
	log.Printf("serving %s on http://%s (pid %d)", abs, ln.Addr(), os.Getpid())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case s := <-stop:
		log.Printf("got %v, shutting down", s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
		}
	case err := <-done:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("serve: %v", err)
			os.Remove(*pidFile)
			os.Exit(1)
		}
	}
}
