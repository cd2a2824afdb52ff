// Command harbor-standin runs Debian's docker-registry (the CNCF distribution
// registry) as the demo's stand-in for Harbor: TLS with the harbor.od.com
// certificate kubebake issued into the state directory, htpasswd auth with
// one user. Harbor's own server cannot run here; kubebake's Harbor API calls
// are tested against a handler that follows Harbor's swagger, and against
// this registry kubebake sees "not Harbor" and pushes as to any registry.
//
//	harbor-standin -state demo/state -dir demo/harbor -addr 127.0.0.1:5443 -user admin -password-file F
//
// It writes the registry's config and replaces itself with the registry
// process (exec), so its PID is the registry's.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	state := flag.String("state", "state", "kubebake state directory (pki/harbor.pem, pki/harbor-key.pem)")
	dir := flag.String("dir", "harbor", "directory for the registry's config and storage")
	addr := flag.String("addr", "127.0.0.1:5443", "listen address")
	user := flag.String("user", "admin", "the one user")
	pwFile := flag.String("password-file", "", "file holding the user's password")
	flag.Parse()
	if err := run(*state, *dir, *addr, *user, *pwFile); err != nil {
		fmt.Fprintf(os.Stderr, "harbor-standin: %v\n", err)
		os.Exit(1)
	}
}

func run(state, dir, addr, user, pwFile string) error {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return fmt.Errorf("docker-registry not found: apt-get install -y docker-registry")
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		return fmt.Errorf("-password-file: %w", err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(strings.TrimSpace(string(pw))), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	cert, key := abs(filepath.Join(state, "pki", "harbor.pem")), abs(filepath.Join(state, "pki", "harbor-key.pem"))
	for _, p := range []string{cert, key} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run kubebake certs first: it issues harbor.od.com's certificate)", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return err
	}
	htpasswd := abs(filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: kubebake-demo
  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: harbor.od.com
    path: %s
`, abs(filepath.Join(dir, "data")), addr, cert, key, htpasswd)
	cfgPath := abs(filepath.Join(dir, "config.yml"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	return syscall.Exec(bin, []string{bin, "serve", cfgPath}, os.Environ())
}
