// Command pushimage copies the image index of an OCI layout to a registry
// over verified TLS with basic auth, as a site pushes an image of its own
// into Harbor (crane-like, no docker): the end-to-end test's pod image into
// the Harbor stand-in.
//
//	pushimage -layout DIR -ref harbor.od.com/public/busybox:1.35.0 \
//	    -endpoint 127.0.0.1:5444 -ca state/pki/ca.pem -user admin -password-file F
//
// -endpoint dials that address for the registry's host (whose name does not
// resolve on the build machine); TLS still verifies the registry's name
// against -ca. An index already there under the tag is left alone; after a
// push the tag is read back and must name the pushed digest.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	dir := flag.String("layout", "", "OCI image layout (its last index is pushed)")
	ref := flag.String("ref", "", "destination, e.g. harbor.od.com/public/busybox:1.35.0")
	endpoint := flag.String("endpoint", "", "host:port to dial for the registry (optional)")
	ca := flag.String("ca", "", "PEM CA to trust in addition to the system roots")
	user := flag.String("user", "", "registry user")
	pwFile := flag.String("password-file", "", "file holding the user's password")
	flag.Parse()
	if err := run(*dir, *ref, *endpoint, *ca, *user, *pwFile); err != nil {
		fmt.Fprintf(os.Stderr, "pushimage: %v\n", err)
		os.Exit(1)
	}
}

func run(dir, ref, endpoint, ca, user, pwFile string) error {
	if dir == "" || ref == "" {
		return errors.New("-layout and -ref are required")
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	root, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := root.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) == 0 {
		return fmt.Errorf("%s: empty layout", dir)
	}
	idx, err := root.ImageIndex(im.Manifests[len(im.Manifests)-1].Digest)
	if err != nil {
		return err
	}
	want, err := idx.Digest()
	if err != nil {
		return err
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificate", ca)
		}
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if endpoint != "" {
		host := r.Context().RegistryStr()
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, "443")
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == host {
				addr = endpoint
			}
			return d.DialContext(ctx, network, addr)
		}
	}
	opts := []remote.Option{remote.WithTransport(tr)}
	if user != "" {
		pw, err := os.ReadFile(pwFile)
		if err != nil {
			return fmt.Errorf("-password-file: %w", err)
		}
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: user, Password: strings.TrimSpace(string(pw))}))
	}

	if d, err := remote.Head(r, opts...); err == nil && d.Digest == want {
		fmt.Printf("present %s@%s\n", r, want)
		return nil
	}
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		return fmt.Errorf("push %s: %w", r, err)
	}
	d, err := remote.Head(r, opts...)
	if err != nil {
		return fmt.Errorf("read back %s: %w", r, err)
	}
	if d.Digest != want {
		return fmt.Errorf("read back %s: registry has %s, pushed %s", r, d.Digest, want)
	}
	fmt.Printf("pushed %s@%s\n", r, want)
	return nil
}
