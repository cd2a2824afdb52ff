package build

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kubebake/kubebake/builder/harbor"
	"github.com/kubebake/kubebake/builder/image"
	"github.com/kubebake/kubebake/builder/lock"
	"github.com/kubebake/kubebake/builder/pki"
	"github.com/kubebake/kubebake/builder/spec"
)

// MirrorResult is what a mirror did.
type MirrorResult struct {
	Registry       string
	Harbor         string // Harbor's version; "" for a plain registry
	ProjectCreated bool
	Robot          string // robot account created, if any
	RobotFile      string // where its secret went (0600)
	Pushed         []image.Pushed
}

// Mirror copies the spec's images into the site registry: from the store
// (as bundle-spec.lock pins them) unless WithMirrorFromUpstream. On Harbor
// it first makes sure the project exists and, when the spec asks, creates a
// robot account; a plain OCI registry gets the images alone.
func Mirror(ctx context.Context, s *spec.Spec, opts ...Option) (*MirrorResult, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	reg := s.Registry
	res := &MirrorResult{Registry: reg.Host}
	ca, err := readCA(o.stateDir)
	if err != nil {
		return nil, err
	}
	imgOpts := append(imageOptions(s, o), image.WithCA(ca))
	if reg.Endpoint != "" {
		imgOpts = append(imgOpts, image.WithEndpoint(reg.Host, reg.Endpoint))
	}

	client, err := harborClient(s, ca)
	if err != nil {
		return nil, err
	}
	switch v, err := client.Version(ctx); {
	case errors.Is(err, harbor.ErrNotHarbor):
		if reg.Robot != nil {
			return nil, fmt.Errorf("registry %s is not Harbor, so it has no robot accounts: remove registry.robot from the spec", reg.Host)
		}
	case err != nil:
		return nil, fmt.Errorf("registry %s: %w", reg.Host, err)
	default:
		res.Harbor = v
		if res.ProjectCreated, err = client.EnsureProject(ctx, reg.Project, !reg.Private); err != nil {
			return nil, err
		}
		if rb := reg.Robot; rb != nil {
			if err := makeRobot(ctx, client, s, o, res); err != nil {
				return nil, err
			}
		}
	}

	target := image.Target{Registry: reg.Host, Project: reg.Project}
	o.progress(Event{Phase: "mirror", Msg: "start"})
	if o.fromUpstream {
		var imgs []image.Image
		for _, im := range s.Images {
			imgs = append(imgs, image.Image{Name: im.Name, Ref: im.Ref})
		}
		res.Pushed, err = image.Copy(ctx, imgs, target, append(imgOpts, upstreamImageOptions(s)...)...)
	} else {
		var l *lock.Lock
		if l, err = lock.Read(lockPath(s, o)); err == nil && (l == nil || len(l.Images) == 0) {
			err = fmt.Errorf("no images pinned in %s: run kubebake pull first", lockPath(s, o))
		}
		if err == nil {
			res.Pushed, err = image.Push(ctx, StoreImages(o.storeDir), imageLock(l), target, imgOpts...)
		}
	}
	if err != nil {
		return nil, err
	}
	o.progress(Event{Phase: "mirror", Msg: "done"})
	return res, nil
}

func lockPath(s *spec.Spec, o *options) string {
	if o.lockFile != "" {
		return o.lockFile
	}
	return lock.PathFor(s.File)
}

// readCA is the cluster CA from the state's PKI: kubebake issues Harbor's
// certificate, so this is what the registry's TLS chains to. Missing is
// fine (a site Harbor with a public certificate).
func readCA(stateDir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(PKIDir(stateDir), pki.CA+".pem"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// harborClient talks to the registry's Harbor API with the spec's
// credentials, trusting the cluster CA and dialling registry.endpoint.
func harborClient(s *spec.Spec, ca []byte) (*harbor.Client, error) {
	reg := s.Registry
	user, pass := "", ""
	for _, c := range s.Credentials {
		if c.Registry == reg.Host {
			user, pass = os.Getenv(c.UsernameEnv), os.Getenv(c.PasswordEnv)
			if user == "" || pass == "" {
				return nil, fmt.Errorf("registry %s: set %s and %s in the environment (credentials[] names them)", reg.Host, c.UsernameEnv, c.PasswordEnv)
			}
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(ca) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(ca)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if reg.Endpoint != "" {
		host := reg.Host
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, "443")
		}
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == host {
				addr = reg.Endpoint
			}
			return dial(ctx, network, addr)
		}
	}
	return harbor.New("https://"+reg.Host, user, pass, &http.Client{Transport: tr, Timeout: time.Minute}), nil
}

// makeRobot creates the spec's robot account and writes its secret, which
// Harbor shows only once, to a 0600 file.
func makeRobot(ctx context.Context, c *harbor.Client, s *spec.Spec, o *options, res *MirrorResult) error {
	rb := s.Registry.Robot
	days := time.Duration(*rb.Duration) * 24 * time.Hour
	if *rb.Duration < 0 {
		days = -1
	}
	robot, err := c.CreateRobot(ctx, s.Registry.Project, rb.Name, days)
	if errors.Is(err, harbor.ErrRobotExists) {
		o.logger.Info("robot account exists; its secret was shown once when it was made", "robot", rb.Name)
		return nil
	}
	if err != nil {
		return err
	}
	path := rb.SecretFile
	if path == "" {
		path = filepath.Join(o.stateDir, "secrets", "robot-"+rb.Name+".json")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := harbor.WriteSecret(path, robot); err != nil {
		return err
	}
	res.Robot, res.RobotFile = robot.Name, path
	return nil
}
