package cmd

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/serve"
)

func newServe(g *globals) *cobra.Command {
	var file, dir, listen, counts string
	var maxFetches int
	var grace time.Duration
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve out/pxe/http read-only, each host's bundle and kickstart only to that host's IP",
		Long: `serve is a small read-only HTTP server for the PXE tree kubebake pxe writes
(out/pxe/http), for small sites and for tests: GET and HEAD only, no directory
listings, nothing outside --dir (symlinks are resolved and must stay inside),
Range requests for resumed downloads (curl -C -), one log line per request on
stderr: time, client IP, method, path, status, bytes, duration, and the host
a per-host file belongs to.

A file whose name, or any directory above it, up to the first dot is a host's
name (bundles/<host>.tar.gz, ks/<host>.cfg, ipxe/<host>.ipxe) is served only
to that host's ip from the spec; anyone else gets 403 and a log line naming
who asked for whose file. Everything else (SHA256SUMS, installer files) is
public. The client is the TCP peer's address: X-Forwarded-For and similar
headers are ignored, so do not put a proxy in front of serve.

--max-fetches N lets at most N copies' worth of each host's bundle leave the
server (a download resumed with Range costs one copy in all; HEAD costs
nothing); then 410 Gone. Counts live in memory unless --counts FILE keeps
them across restarts.

Threat model: serve assumes an isolated provisioning network, and anyone on it
who can use a host's IP address (before the host fetches, or by ARP spoofing)
can take that host's bundle, with its private keys, and its kickstart, with
the root password hash. With --max-fetches 1 such a theft makes the host's own
install fail with 410, so it is noticed; it is not prevented.`,
		Example: `  kubebake serve -f bundle-spec.yaml --listen 10.4.7.200:8088 --max-fetches 1
  kubebake serve --dir out/pxe/http --max-fetches 1 --counts state/serve-counts.json

  # on hdss7-21 (10.4.7.21), e.g. in kickstart's %post:
  curl -fsS --retry 5 -C - -o /tmp/b.tar.gz http://10.4.7.200:8088/bundles/hdss7-21.tar.gz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxFetches < 0 {
				return usageError{fmt.Errorf("--max-fetches %d: want 0 (unlimited) or more", maxFetches)}
			}
			if counts != "" && maxFetches == 0 {
				return usageError{fmt.Errorf("--counts needs --max-fetches")}
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("--dir %s: not a directory (kubebake pxe writes out/pxe/http)", dir)
			}
			s, err := loadSpec(g, file)
			if err != nil {
				return err
			}
			hosts, err := serve.SpecHosts(s)
			if err != nil {
				return err
			}
			opts := []serve.Option{serve.WithLogger(g.logger()), serve.WithAccessLog(g.stderr),
				serve.WithMaxFetches(maxFetches), serve.WithShutdownGrace(grace)}
			if counts != "" {
				opts = append(opts, serve.WithCountsFile(counts))
			}
			h, err := serve.New(dir, hosts, opts...)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			limit := "no fetch limit"
			if maxFetches > 0 {
				limit = "at most " + strconv.Itoa(maxFetches) + " fetch(es) per bundle"
			}
			fmt.Fprintf(g.stdout, "serving %s on %s for %d hosts, %s\n", dir, listenURL(ln), h.Hosts(), limit)
			if err := h.Serve(ctx, ln); err != nil {
				return err
			}
			fmt.Fprintln(g.stderr, "stopped")
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "bundle-spec.yaml", "the bundle spec: its hosts' names and IPs decide who gets which file")
	c.Flags().StringVar(&dir, "dir", "out/pxe/http", "the directory to serve")
	c.Flags().StringVar(&listen, "listen", ":8088", "address to listen on (host:port); the URL your spec's PXE HTTP base names")
	c.Flags().IntVar(&maxFetches, "max-fetches", 0, "copies of each host's bundle that may be served, then 410 Gone (0: unlimited)")
	c.Flags().StringVar(&counts, "counts", "", "keep the fetch counts in this JSON file across restarts (default: in memory)")
	c.Flags().DurationVar(&grace, "shutdown-grace", 30*time.Second, "on SIGINT/SIGTERM, how long running downloads may finish before they are cut")
	return c
}

// listenURL is the URL a listener answers on; an unspecified address is
// shown as 0.0.0.0.
func listenURL(ln net.Listener) string {
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return "http://" + ln.Addr().String()
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "0.0.0.0"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}
