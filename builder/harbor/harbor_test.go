package harbor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/internal/testregistry"
)

func start(t *testing.T, version string) (*fakeHarbor, *Client) {
	t.Helper()
	f := newFakeHarbor(version)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, New(srv.URL, "admin", "Harbor12345", srv.Client())
}

func TestVersion(t *testing.T) {
	_, c := start(t, "v2.11.0-abcd1234")
	v, err := c.Version(context.Background())
	if err != nil || v != "v2.11.0-abcd1234" {
		t.Fatalf("Version = %q, %v", v, err)
	}
}

// The real distribution registry has no /api/v2.0: ErrNotHarbor.
func TestNotHarborAgainstRealRegistry(t *testing.T) {
	r := testregistry.Start(t, testregistry.WithAuth("u", "p"))
	c := New(r.URL(), r.User, r.Password, &http.Client{Transport: r.Transport()})
	_, err := c.Version(context.Background())
	if !errors.Is(err, ErrNotHarbor) {
		t.Fatalf("got %v, want ErrNotHarbor", err)
	}
	if _, err := c.EnsureProject(context.Background(), "public", true); err == nil {
		t.Error("EnsureProject against a plain registry succeeded")
	}
}

func TestEnsureProject(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		project     string
		race        bool
		wantCreated bool
	}{
		{"exists", "library", false, false},
		{"created", "public", false, true},
		{"race 409 counts as existing", "library", true, false},
	}
	t.Run("proxy cache refused", func(t *testing.T) {
		f, c := start(t, "v2.11.0-abc")
		f.projects["dockerhub"] = &fakeProject{ID: 9, Name: "dockerhub", RegistryID: 3}
		if _, err := c.EnsureProject(ctx, "dockerhub", true); !errors.Is(err, ErrProxyCache) {
			t.Errorf("got %v, want ErrProxyCache", err)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, c := start(t, "v2.11.0-abc")
			if tc.race {
				f.raceProject = tc.project
			}
			created, err := c.EnsureProject(ctx, tc.project, true)
			if err != nil || created != tc.wantCreated {
				t.Fatalf("EnsureProject = %v, %v; want %v", created, err, tc.wantCreated)
			}
			p := f.projects[tc.project]
			if p == nil || p.Metadata["public"] != "true" {
				t.Fatalf("project %+v", p)
			}
			if tc.wantCreated && p.Limit != -1 {
				t.Errorf("storage_limit %d, want -1", p.Limit)
			}
			if tc.race && len(f.calls) != 2 {
				t.Errorf("calls %v, want HEAD then POST", f.calls)
			}
			// idempotent
			if created, err := c.EnsureProject(ctx, tc.project, true); err != nil || created {
				t.Errorf("second EnsureProject = %v, %v", created, err)
			}
		})
	}
}

func TestBadPassword(t *testing.T) {
	f := newFakeHarbor("v2.11.0")
	srv := httptest.NewServer(f)
	defer srv.Close()
	const wrong = "not-the-Password-42"
	c := New(srv.URL, "admin", wrong, srv.Client())
	_, err := c.EnsureProject(context.Background(), "public", true)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got %v, want ErrUnauthorized", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `"admin"`) || !strings.Contains(msg, strings.TrimPrefix(srv.URL, "http://")) || !strings.Contains(msg, "password") {
		t.Errorf("message %q should name the user, the host and the password to check", msg)
	}
	if strings.Contains(msg, wrong) {
		t.Error("the password is in the error")
	}
	if _, err := c.CreateRobot(context.Background(), "library", "pusher", Never); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("CreateRobot: %v", err)
	}
}

func TestCreateRobot(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		version  string
		duration time.Duration
		wantName string
		wantPath string
		days     int64 // new API: duration sent
		expiry   bool
	}{
		{"v2.11.0-abc", Never, "robot$public+pusher", "POST /api/v2.0/robots", -1, false},
		{"v2.11.0-abc", 90 * 24 * time.Hour, "robot$public+pusher", "POST /api/v2.0/robots", 90, true},
		{"v2.11.0-abc", 36 * time.Hour, "robot$public+pusher", "POST /api/v2.0/robots", 2, true},
		{"v2.13.1-abc", Never, "robot$public+pusher", "POST /api/v2.0/robots", -1, false},
		{"v2.1.3-abc", Never, "robot$pusher", "POST /api/v2.0/projects/2/robots", 0, false},
		{"v2.1.3-abc", 10 * 24 * time.Hour, "robot$pusher", "POST /api/v2.0/projects/2/robots", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.version+"/"+tc.duration.String(), func(t *testing.T) {
			f, c := start(t, tc.version)
			if _, err := c.EnsureProject(ctx, "public", true); err != nil {
				t.Fatal(err)
			}
			r, err := c.CreateRobot(ctx, "public", "pusher", tc.duration)
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != tc.wantName || r.Secret == "" {
				t.Errorf("robot %s secret set %v; want %s", r.Name, r.Secret != "", tc.wantName)
			}
			if got := !r.ExpiresAt.IsZero(); got != tc.expiry {
				t.Errorf("ExpiresAt %v, want expiry %v", r.ExpiresAt, tc.expiry)
			}
			if tc.expiry {
				want := time.Now().Add(tc.duration).Add(24 * time.Hour)
				if r.ExpiresAt.After(want) || r.ExpiresAt.Before(time.Now().Add(tc.duration-time.Minute)) {
					t.Errorf("ExpiresAt %v, duration %v", r.ExpiresAt, tc.duration)
				}
			}
			found := false
			for _, call := range f.calls {
				found = found || call == tc.wantPath
				if tc.days == 0 && call == "POST /api/v2.0/robots" {
					t.Errorf("old Harbor got the new API")
				}
			}
			if !found {
				t.Errorf("calls %v, want %s", f.calls, tc.wantPath)
			}
			req := f.robots[tc.wantName]
			if tc.days != 0 {
				// duration sent explicitly: never Harbor's 30-day default
				if d, ok := req["duration"].(float64); !ok || int64(d) != tc.days || req["effective_duration"] == int64(30) {
					t.Errorf("duration sent %v, want %d", req["duration"], tc.days)
				}
				perm := req["permissions"].([]any)[0].(map[string]any)
				acc, _ := json.Marshal(perm["access"])
				if perm["namespace"] != "public" || !strings.Contains(string(acc), `"push"`) || !strings.Contains(string(acc), `"pull"`) {
					t.Errorf("permissions %v", perm)
				}
			} else {
				exp, ok := req["expires_at"].(float64)
				if !ok || (tc.duration == Never && exp != -1) || (tc.duration != Never && int64(exp) < time.Now().Add(tc.duration-time.Minute).Unix()) {
					t.Errorf("expires_at %v for duration %v", req["expires_at"], tc.duration)
				}
			}
			if strings.Contains(r.String(), r.Secret) {
				t.Error("Robot.String shows the secret")
			}
			// again: 409 → ErrRobotExists
			if _, err := c.CreateRobot(ctx, "public", "pusher", tc.duration); !errors.Is(err, ErrRobotExists) {
				t.Errorf("duplicate robot: %v", err)
			}
		})
	}
}

func TestCreateRobotRejectsZeroDuration(t *testing.T) {
	_, c := start(t, "v2.11.0")
	if _, err := c.CreateRobot(context.Background(), "library", "pusher", 0); err == nil || !strings.Contains(err.Error(), "30 days") {
		t.Errorf("zero duration: %v", err)
	}
}

func TestWriteSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "robot.json")
	r := &Robot{Name: "robot$public+pusher", Secret: "s3cr3t", ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := WriteSecret(path, r); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	var doc map[string]string
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &doc); err != nil || doc["secret"] != "s3cr3t" || doc["name"] != r.Name || doc["expires_at"] != "2030-01-02T03:04:05Z" {
		t.Errorf("file %s: %v", b, err)
	}
	// overwrite atomically, no temp files left behind
	r.Secret, r.ExpiresAt = "other", time.Time{}
	if err := WriteSecret(path, r); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries", len(ents))
	}
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), `"never"`) {
		t.Errorf("file %s", b)
	}
}
