package image

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubebake/kubebake/internal/testregistry"
)

func TestTargetRef(t *testing.T) {
	harbor := Target{Registry: "harbor.od.com", Project: "public"}
	tests := []struct {
		name, src string
		t         Target
		want      string
	}{
		{"keeps path", "registry.k8s.io/coredns/coredns:v1.15.0", harbor, "harbor.od.com/public/coredns/coredns:v1.15.0"},
		{"flatten", "registry.k8s.io/coredns/coredns:v1.15.0", Target{Registry: "harbor.od.com", Project: "public", Flatten: true}, "harbor.od.com/public/coredns:v1.15.0"},
		{"plain registry", "registry.k8s.io/pause:3.10", Target{Registry: "127.0.0.1:5001"}, "127.0.0.1:5001/pause:3.10"},
		{"docker hub library", "traefik:v3.2", harbor, "harbor.od.com/public/library/traefik:v3.2"},
		{"docker hub org", "docker.io/flannel/flannel:v0.26.1", harbor, "harbor.od.com/public/flannel/flannel:v0.26.1"},
		{"tag and digest keep the tag", "registry.k8s.io/pause:3.10@sha256:" + strings.Repeat("a", 64), harbor, "harbor.od.com/public/pause:3.10"},
		{"digest only", "registry.k8s.io/pause@sha256:" + strings.Repeat("b", 64), harbor, "harbor.od.com/public/pause@sha256:" + strings.Repeat("b", 64)},
		{"no tag means latest", "registry.k8s.io/pause", harbor, "harbor.od.com/public/pause:latest"},
		{"registry port", "127.0.0.1:5000/x/y:1", harbor, "harbor.od.com/public/x/y:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TargetRef(tc.src, tc.t)
			if err != nil || got != tc.want {
				t.Errorf("TargetRef(%q) = %q, %v; want %q", tc.src, got, err, tc.want)
			}
		})
	}
	for _, bad := range []Target{{}, {Registry: "a/b"}, {Registry: "h", Project: "a/b"}} {
		if _, err := TargetRef("pause:1", bad); err == nil {
			t.Errorf("TargetRef with %+v: no error", bad)
		}
	}
}

func TestOptionsRejectBadValues(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
	}{
		{"jobs 0", []Option{WithJobs(0)}},
		{"empty platforms", []Option{WithPlatforms(nil)}},
		{"bad platform", []Option{WithPlatforms([]string{"linux"})}},
		{"all mixed", []Option{WithPlatforms([]string{"all", "linux/amd64"})}},
		{"platforms twice", []Option{WithPlatforms([]string{"all"}), WithPlatforms([]string{"all"})}},
		{"mirror path", []Option{WithMirrors(Mirror{"registry.k8s.io", "host/x"})}},
		{"mirror twice", []Option{WithMirrors(Mirror{"a", "b"}, Mirror{"a", "c"})}},
		{"cred without env", []Option{WithCreds([]Cred{{Registry: "h"}})}},
		{"cred twice", []Option{WithCreds([]Cred{{"h", "U", "P"}, {"h", "U", "P"}})}},
		{"ca not pem", []Option{WithCA([]byte("nope"))}},
		{"retry zero steps", []Option{WithRetry(remote.Backoff{})}},
		{"lock without digest", []Option{WithLock([]Locked{{Ref: "x"}}, true)}},
		{"lock twice", []Option{WithLock(nil, true), WithLock(nil, true)}},
		{"nil progress", []Option{WithProgress(nil)}},
		{"nil logger", []Option{WithLogger(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := makeOptions(tc.opts...); err == nil {
				t.Error("no error")
			}
			if _, err := Pull(context.Background(), t.TempDir(), nil, tc.opts...); err == nil {
				t.Error("Pull accepted it")
			}
		})
	}
	o, err := makeOptions()
	if err != nil || o.jobs != 4 || len(o.platforms) != 1 || o.platforms[0] != "linux/amd64" || o.attempts != 5 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// Plain HTTP is refused unless the host is listed with WithInsecure, even
// for loopback addresses where go-containerregistry would fall back to it.
func TestPlainHTTPNeedsInsecure(t *testing.T) {
	r := testregistry.Start(t, testregistry.WithoutTLS())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img := []Image{{"x", r.Addr + "/x:1"}}
	_, err := Pull(ctx, t.TempDir(), img, fastRetry)
	if err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("got %v, want a refusal of plain HTTP", err)
	}
	if err != nil {
		t.Log(err)
	}
	_, err = Pull(ctx, t.TempDir(), img, fastRetry, WithInsecure(r.Addr))
	if err == nil || strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("with WithInsecure: got %v, want a not-found from the registry", err)
	}
	if errors.Is(err, ErrUnauthorized) {
		t.Error("not-found reported as unauthorized")
	}
}
