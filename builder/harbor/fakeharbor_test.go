package harbor

// fakeHarbor is an http.Handler that follows Harbor's published swagger
// (goharbor/harbor api/v2.0/swagger.yaml) for what kubebake calls. Taken
// from the swagger:
//   - basePath /api/v2.0, basic auth (securityDefinitions: basic); a wrong
//     password answers 401 with the errors body
//     {"errors":[{"code":"UNAUTHORIZED","message":…}]} (definitions/Errors);
//   - HEAD /projects?project_name= (headProject): 200 or 404, no body;
//   - POST /projects (createProject, body ProjectReq with project_name,
//     metadata.public as a string, storage_limit): 201 with a Location
//     header (responses/201), 409 when the name is taken;
//   - GET /projects?name= (listProjects): an array of Project
//     {project_id, name, …}; the name filter is a fuzzy match;
//   - POST /robots (createRobot, Harbor ≥ 2.2; body RobotCreate with name,
//     level, duration in days, permissions [{kind, namespace, access}]):
//     201 RobotCreated {id, name, secret, creation_time, expires_at}, the
//     name prefixed "robot$<project>+"; 409 on a duplicate;
//   - POST /projects/{project_id}/robots (Harbor 2.0/2.1 robot v1, body
//     RobotAccountCreate {name, description, expires_at, access
//     [{resource:/project/<id>/repository, action}]}): 201
//     RobotAccountPostRep {name:"robot$<name>", token}; removed in 2.13;
//   - Project.registry_id is set on proxy-cache projects (v2.1+);
//   - GET /systeminfo: GeneralInfo with harbor_version ("v2.11.0-…").
// Choices of ours where the swagger says nothing: robot names are unique
// per server, and the v1 route answers 404 on servers ≥ 2.13, as a route
// that no longer exists would.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

type fakeProject struct {
	ID         int64
	Name       string
	Metadata   map[string]string
	Limit      int64
	RegistryID int64 // a proxy-cache project's upstream registry
}

type fakeHarbor struct {
	version    string // "v2.11.0-abc"
	user, pass string

	mu       sync.Mutex
	projects map[string]*fakeProject
	robots   map[string]map[string]any // name → request body
	nextID   int64
	// raceProject: HEAD reports this project missing, POST finds it (409)
	raceProject string
	calls       []string // "METHOD path"
}

func newFakeHarbor(version string) *fakeHarbor {
	return &fakeHarbor{
		version: version, user: "admin", pass: "Harbor12345",
		projects: map[string]*fakeProject{"library": {ID: 1, Name: "library", Metadata: map[string]string{"public": "true"}, Limit: -1}},
		robots:   map[string]map[string]any{}, nextID: 2,
	}
}

func (f *fakeHarbor) minor() int {
	m := regexp.MustCompile(`^v2\.(\d+)`).FindStringSubmatch(f.version)
	n, _ := strconv.Atoi(m[1])
	return n
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

var v1RobotPath = regexp.MustCompile(`^/api/v2\.0/projects/(\d+)/robots$`)

func (f *fakeHarbor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if !strings.HasPrefix(r.URL.Path, "/api/v2.0/") {
		http.NotFound(w, r)
		return
	}
	u, p, hasAuth := r.BasicAuth()
	if hasAuth && (u != f.user || p != f.pass) {
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "unauthorized")
		return
	}
	if r.URL.Path == "/api/v2.0/systeminfo" && r.Method == http.MethodGet {
		info := map[string]any{"auth_mode": "db_auth", "registry_url": "harbor.od.com", "with_chartmuseum": false}
		if hasAuth { // Harbor shows the version to signed-in users only
			info["harbor_version"] = f.version
		}
		writeJSON(w, http.StatusOK, info)
		return
	}
	if !hasAuth {
		writeErr(w, http.StatusUnauthorized, "UNAUTHORIZED", "unauthorized")
		return
	}
	switch {
	case r.URL.Path == "/api/v2.0/projects" && r.Method == http.MethodHead:
		name := r.URL.Query().Get("project_name")
		if name == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, ok := f.projects[name]; ok && name != f.raceProject {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNotFound)

	case r.URL.Path == "/api/v2.0/projects" && r.Method == http.MethodPost:
		var req struct {
			ProjectName  string            `json:"project_name"`
			Metadata     map[string]string `json:"metadata"`
			StorageLimit *int64            `json:"storage_limit"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ProjectName == "" {
			writeErr(w, http.StatusBadRequest, "BAD_REQUEST", "invalid project request")
			return
		}
		if pub, ok := req.Metadata["public"]; ok && pub != "true" && pub != "false" {
			writeErr(w, http.StatusBadRequest, "BAD_REQUEST", "metadata.public must be \"true\" or \"false\"")
			return
		}
		if _, ok := f.projects[req.ProjectName]; ok {
			writeErr(w, http.StatusConflict, "CONFLICT", fmt.Sprintf("The project named %s already exists", req.ProjectName))
			return
		}
		p := &fakeProject{ID: f.nextID, Name: req.ProjectName, Metadata: req.Metadata, Limit: -2}
		if req.StorageLimit != nil {
			p.Limit = *req.StorageLimit
		}
		f.nextID++
		f.projects[p.Name] = p
		w.Header().Set("Location", fmt.Sprintf("/api/v2.0/projects/%d", p.ID))
		w.WriteHeader(http.StatusCreated)

	case r.URL.Path == "/api/v2.0/projects" && r.Method == http.MethodGet:
		q := r.URL.Query().Get("name")
		out := []map[string]any{}
		for _, p := range f.projects {
			if strings.Contains(p.Name, q) {
				pj := map[string]any{"project_id": p.ID, "name": p.Name, "metadata": p.Metadata}
				if p.RegistryID != 0 {
					pj["registry_id"] = p.RegistryID
				}
				out = append(out, pj)
			}
		}
		writeJSON(w, http.StatusOK, out)

	case r.URL.Path == "/api/v2.0/robots" && r.Method == http.MethodPost:
		if f.minor() < 2 {
			http.NotFound(w, r)
			return
		}
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "BAD_REQUEST", "invalid robot request")
			return
		}
		perms, _ := req["permissions"].([]any)
		if req["level"] != "project" || len(perms) != 1 {
			writeErr(w, http.StatusBadRequest, "BAD_REQUEST", "a project robot needs level project and one permission")
			return
		}
		perm := perms[0].(map[string]any)
		ns, _ := perm["namespace"].(string)
		if _, ok := f.projects[ns]; !ok || perm["kind"] != "project" {
			writeErr(w, http.StatusBadRequest, "BAD_REQUEST", "project "+ns+" not found")
			return
		}
		dur := int64(30) // Harbor's default when duration is absent
		if d, ok := req["duration"].(float64); ok {
			dur = int64(d)
		}
		req["effective_duration"] = dur
		name := "robot$" + ns + "+" + req["name"].(string)
		if _, ok := f.robots[name]; ok {
			writeErr(w, http.StatusConflict, "CONFLICT", "robot account "+name+" already exists")
			return
		}
		f.robots[name] = req
		id := f.nextID
		f.nextID++
		exp := int64(-1)
		if dur > 0 {
			exp = time.Now().Add(time.Duration(dur) * 24 * time.Hour).Unix()
		}
		w.Header().Set("Location", fmt.Sprintf("/api/v2.0/robots/%d", id))
		writeJSON(w, http.StatusCreated, map[string]any{
			"id": id, "name": name, "secret": "s3cr3t-" + strconv.FormatInt(id, 10),
			"creation_time": time.Now().UTC().Format(time.RFC3339), "expires_at": exp,
		})

	case v1RobotPath.MatchString(r.URL.Path) && r.Method == http.MethodPost:
		if f.minor() >= 13 {
			http.NotFound(w, r)
			return
		}
		pid, _ := strconv.ParseInt(v1RobotPath.FindStringSubmatch(r.URL.Path)[1], 10, 64)
		var proj *fakeProject
		for _, p := range f.projects {
			if p.ID == pid {
				proj = p
			}
		}
		if proj == nil {
			writeErr(w, http.StatusNotFound, "NOT_FOUND", "project not found")
			return
		}
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "BAD_REQUEST", "invalid robot request")
			return
		}
		acc, _ := req["access"].([]any)
		for _, a := range acc {
			res := a.(map[string]any)["resource"]
			if res != fmt.Sprintf("/project/%d/repository", pid) {
				writeErr(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("resource %v outside project %d", res, pid))
				return
			}
		}
		name := "robot$" + req["name"].(string)
		if _, ok := f.robots[name]; ok {
			writeErr(w, http.StatusConflict, "CONFLICT", "robot account "+name+" already exists")
			return
		}
		f.robots[name] = req
		w.Header().Set("Location", fmt.Sprintf("/api/v2.0/projects/%d/robots/%d", pid, f.nextID))
		f.nextID++
		writeJSON(w, http.StatusCreated, map[string]any{"name": name, "token": "t0ken-" + req["name"].(string)})

	default:
		http.NotFound(w, r)
	}
}
