// Package harbor talks to Harbor's REST API v2.0 (/api/v2.0): the version,
// projects, and robot accounts — what `kubebake mirror` needs before it
// pushes images. Image traffic itself goes through the registry protocol
// (builder/image); this package never sees it.
//
// Behaviour follows Harbor's published swagger (api/v2.0/swagger.yaml) and
// docs; the tests run against a handler that mimics it, since Harbor's
// server cannot run here.
package harbor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNotHarbor means the server answers, but not Harbor's API (a plain
	// OCI registry: 404 on /api/v2.0).
	ErrNotHarbor = errors.New("not a Harbor server (no /api/v2.0): treat it as a plain registry")
	// ErrUnauthorized means Harbor refused the credentials (401).
	ErrUnauthorized = errors.New("harbor refused the credentials")
	// ErrForbidden means the user lacks the permission (403).
	ErrForbidden = errors.New("harbor user lacks permission")
	// ErrProxyCache means the project is a proxy cache (pull-through), which
	// nothing can be pushed into.
	ErrProxyCache = errors.New("project is a proxy cache: Harbor refuses pushes into it; choose another project or mirror nothing")
	// ErrRobotExists means a robot of that name already exists (409).
	ErrRobotExists = errors.New("robot account already exists")
)

// Client calls one Harbor's API with basic auth.
type Client struct {
	base       *url.URL
	err        error // a bad base URL, reported by every call
	user, pass string
	http       *http.Client
}

// New returns a client for the Harbor at baseURL ("https://harbor.od.com").
// httpClient nil means a client with a 30s timeout (for a private CA, pass
// a client whose transport trusts it). A malformed baseURL is reported by
// every call.
func New(baseURL, user, password string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	c := &Client{user: user, pass: password, http: httpClient}
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.err = fmt.Errorf("harbor URL %q: want http(s)://host[:port]", baseURL)
		u = &url.URL{}
	}
	c.base = u
	return c
}

// apiError is Harbor's error body: {"errors":[{"code":"…","message":"…"}]}.
type apiError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// StatusError is a non-success answer from Harbor.
type StatusError struct {
	Method, Path string
	Status       int
	Message      string // Harbor's own error messages, joined
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("harbor %s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// do sends a request to path (under the base URL) and decodes a JSON
// answer into out when the status is in ok. Bodies are never logged.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, ok ...int) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("harbor %s %s: %w", method, c.base.Host, err)
	}
	defer resp.Body.Close()
	for _, s := range ok {
		if resp.StatusCode == s {
			if out != nil && method != http.MethodHead {
				if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
					return resp, fmt.Errorf("harbor %s %s: decode answer: %w", method, path, err)
				}
			}
			return resp, nil
		}
	}
	se := &StatusError{Method: method, Path: path, Status: resp.StatusCode}
	var ae apiError
	if b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); json.Unmarshal(b, &ae) == nil {
		var msgs []string
		for _, e := range ae.Errors {
			msgs = append(msgs, e.Message)
		}
		se.Message = strings.Join(msgs, "; ")
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return resp, fmt.Errorf("%w: Harbor at %s refused user %q (HTTP 401): check the Harbor user and password given to kubebake: %w", ErrUnauthorized, c.base.Host, c.user, se)
	case http.StatusForbidden:
		return resp, fmt.Errorf("%w: user %q may not %s %s on %s (HTTP 403; it needs project admin or system admin): %w", ErrForbidden, c.user, method, path, c.base.Host, se)
	}
	return resp, se
}

// Version returns Harbor's version ("v2.11.0-abcdef12") from
// GET /api/v2.0/systeminfo, or ErrNotHarbor when the server has no Harbor
// API (404), as a plain OCI registry does.
func (c *Client) Version(ctx context.Context) (string, error) {
	var info struct {
		HarborVersion string `json:"harbor_version"`
	}
	_, err := c.do(ctx, http.MethodGet, "/api/v2.0/systeminfo", nil, nil, &info, http.StatusOK)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return "", fmt.Errorf("%s: %w", c.base.Host, ErrNotHarbor)
	}
	if err != nil {
		return "", err
	}
	if info.HarborVersion == "" {
		// Harbor hides the version from anonymous callers.
		return "", fmt.Errorf("harbor %s: systeminfo has no harbor_version (are credentials set?)", c.base.Host)
	}
	return info.HarborVersion, nil
}

// EnsureProject creates project name unless it exists: HEAD
// /api/v2.0/projects?project_name= (200 exists, 404 missing), then POST
// /api/v2.0/projects with metadata.public and an unlimited storage quota
// (201). A 409 (someone created it meanwhile) counts as existing.
func (c *Client) EnsureProject(ctx context.Context, name string, public bool) (created bool, err error) {
	if name == "" || strings.ContainsAny(name, "/ ") {
		return false, fmt.Errorf("harbor project %q: invalid name", name)
	}
	resp, err := c.do(ctx, http.MethodHead, "/api/v2.0/projects", url.Values{"project_name": {name}}, nil, nil, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return false, fmt.Errorf("harbor project %s: %w", name, err)
	}
	if resp.StatusCode == http.StatusOK {
		p, err := c.project(ctx, name)
		if err != nil {
			return false, fmt.Errorf("harbor project %s: %w", name, err)
		}
		if p.RegistryID != nil && *p.RegistryID != 0 {
			return false, fmt.Errorf("harbor project %s: %w", name, ErrProxyCache)
		}
		return false, nil
	}
	req := map[string]any{
		"project_name":  name,
		"metadata":      map[string]string{"public": strconv.FormatBool(public)},
		"storage_limit": -1,
	}
	resp, err = c.do(ctx, http.MethodPost, "/api/v2.0/projects", nil, req, nil, http.StatusCreated, http.StatusConflict)
	if err != nil {
		return false, fmt.Errorf("harbor project %s: create: %w", name, err)
	}
	return resp.StatusCode == http.StatusCreated, nil
}
