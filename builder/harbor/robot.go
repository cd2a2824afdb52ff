package harbor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/google/renameio/v2"
)

// Robot is a robot account as Harbor created it. Secret is shown once.
type Robot struct {
	Name      string    // as Harbor names it: "robot$public+pusher" (≥ 2.2) or "robot$pusher" (< 2.2)
	Secret    string    `json:"-"`
	ExpiresAt time.Time // zero: never expires
}

// String names the robot and its expiry, never the secret.
func (r *Robot) String() string {
	exp := "never"
	if !r.ExpiresAt.IsZero() {
		exp = r.ExpiresAt.Format(time.RFC3339)
	}
	return fmt.Sprintf("robot %s (expires %s)", r.Name, exp)
}

// Never is the duration of a robot that never expires.
const Never time.Duration = -1

// CreateRobot creates a robot account that can push and pull the
// repositories of project, expiring after duration (rounded up to whole
// days; Never for no expiry). The duration is always sent: Harbor's default
// is 30 days, which silently breaks mirrors a month later.
//
// The API is chosen from Version: Harbor ≥ 2.2 gets POST /api/v2.0/robots
// (level "project", duration in days); older ones get the per-project
// POST /api/v2.0/projects/{project_id}/robots (expires_at in unix seconds,
// access to /project/<id>/repository), which Harbor 2.13 removed. An
// unparsable version tries the new API and falls back on 404/405.
func (c *Client) CreateRobot(ctx context.Context, project, name string, duration time.Duration) (*Robot, error) {
	if duration == 0 || (duration < 0 && duration != Never) {
		return nil, fmt.Errorf("harbor robot %s: duration must be positive or Never (-1); Harbor's default of 30 days is never used", name)
	}
	if name == "" || project == "" {
		return nil, errors.New("harbor robot: project and name are required")
	}
	v, err := c.Version(ctx)
	if err != nil {
		return nil, fmt.Errorf("harbor robot %s: %w", name, err)
	}
	major, minor, ok := parseVersion(v)
	switch {
	case ok && (major > 2 || (major == 2 && minor >= 2)):
		return c.createRobotV2(ctx, project, name, duration)
	case ok:
		return c.createRobotV1(ctx, project, name, duration)
	}
	r, err := c.createRobotV2(ctx, project, name, duration)
	var se *StatusError
	if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed) {
		return c.createRobotV1(ctx, project, name, duration)
	}
	return r, err
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

// parseVersion reads "v2.11.0-abc" as 2, 11.
func parseVersion(v string) (major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

type access struct {
	Resource string `json:"resource"`
	Action   string `json:"action"`
}

// robotCreated is the answer of both APIs: ≥ 2.2 sends RobotCreated
// {id,name,secret,creation_time,expires_at}; 2.0/2.1 send
// RobotAccountPostRep {name,token}.
type robotCreated struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Secret    string `json:"secret"`
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"`
}

func (rc *robotCreated) robot(fallbackExpiry int64) *Robot {
	r := &Robot{Name: rc.Name, Secret: rc.Secret}
	if r.Secret == "" {
		r.Secret = rc.Token
	}
	exp := rc.ExpiresAt
	if exp == 0 {
		exp = fallbackExpiry
	}
	if exp > 0 {
		r.ExpiresAt = time.Unix(exp, 0).UTC()
	}
	return r
}

func days(d time.Duration) int64 {
	if d == Never {
		return -1
	}
	n := int64(d / (24 * time.Hour))
	if d%(24*time.Hour) != 0 {
		n++
	}
	return n
}

func (c *Client) createRobotV2(ctx context.Context, project, name string, duration time.Duration) (*Robot, error) {
	req := map[string]any{
		"name":        name,
		"description": "kubebake mirror: push and pull " + project,
		"level":       "project",
		"disable":     false,
		"duration":    days(duration),
		"permissions": []map[string]any{{
			"kind":      "project",
			"namespace": project,
			"access":    []access{{"repository", "push"}, {"repository", "pull"}},
		}},
	}
	var rc robotCreated
	resp, err := c.do(ctx, http.MethodPost, "/api/v2.0/robots", nil, req, &rc, http.StatusCreated)
	if err != nil {
		return nil, robotErr(project, name, resp, err)
	}
	var exp int64 = -1
	if duration != Never {
		exp = time.Now().Add(time.Duration(days(duration)) * 24 * time.Hour).Unix()
	}
	return rc.robot(exp), nil
}

func (c *Client) createRobotV1(ctx context.Context, project, name string, duration time.Duration) (*Robot, error) {
	id, err := c.projectID(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("harbor robot %s: %w", name, err)
	}
	var exp int64 = -1
	if duration != Never {
		exp = time.Now().Add(time.Duration(days(duration)) * 24 * time.Hour).Unix()
	}
	res := fmt.Sprintf("/project/%d/repository", id)
	req := map[string]any{
		"name":        name,
		"description": "kubebake mirror: push and pull " + project,
		"expires_at":  exp,
		"access":      []access{{res, "push"}, {res, "pull"}},
	}
	var rc robotCreated
	resp, err := c.do(ctx, http.MethodPost, fmt.Sprintf("/api/v2.0/projects/%d/robots", id), nil, req, &rc, http.StatusCreated)
	if err != nil {
		return nil, robotErr(project, name, resp, err)
	}
	return rc.robot(exp), nil
}

func robotErr(project, name string, resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode == http.StatusConflict {
		return fmt.Errorf("harbor robot %s in project %s: %w (delete it in Harbor or choose another name): %w", name, project, ErrRobotExists, err)
	}
	return fmt.Errorf("harbor robot %s in project %s: %w", name, project, err)
}

type project struct {
	ID         int64  `json:"project_id"`
	Name       string `json:"name"`
	RegistryID *int64 `json:"registry_id"` // set for proxy-cache projects (≥ 2.1)
}

// project looks a project up with GET /api/v2.0/projects?name= (a fuzzy
// match there, so the exact name is picked from the answer).
func (c *Client) project(ctx context.Context, name string) (*project, error) {
	var ps []project
	if _, err := c.do(ctx, http.MethodGet, "/api/v2.0/projects", url.Values{"name": {name}}, nil, &ps, http.StatusOK); err != nil {
		return nil, fmt.Errorf("project %s: %w", name, err)
	}
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i], nil
		}
	}
	return nil, fmt.Errorf("project %s does not exist in Harbor (create it first)", name)
}

func (c *Client) projectID(ctx context.Context, name string) (int64, error) {
	p, err := c.project(ctx, name)
	if err != nil {
		return 0, err
	}
	return p.ID, nil
}

// WriteSecret writes r to path as JSON {"name","secret","expires_at"} with
// mode 0600, atomically (temp file, fsync, rename). The secret is written
// nowhere else and never logged.
func WriteSecret(path string, r *Robot) error {
	if r == nil || r.Secret == "" {
		return fmt.Errorf("robot secret %s: nothing to write", path)
	}
	doc := struct {
		Name      string `json:"name"`
		Secret    string `json:"secret"`
		ExpiresAt string `json:"expires_at"` // RFC 3339, "never"
	}{Name: r.Name, Secret: r.Secret, ExpiresAt: "never"}
	if !r.ExpiresAt.IsZero() {
		doc.ExpiresAt = r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("robot secret %s: %w", path, err)
	}
	if err := renameio.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("robot secret %s: %w", path, err)
	}
	return nil
}
