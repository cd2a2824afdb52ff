package steps

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// imgFake is containerd's image store: Present fails while containerd (per
// sd) is not active, Import makes every image in the layout present.
type imgFake struct {
	sd       *sdFake
	inLayout []plan.Image // what an import brings in
	have     map[string]string
	imports  []string
	failing  int // Present fails this many more times (containerd still starting)
}

func (f *imgFake) Present(_ context.Context, ref, digest string) (bool, error) {
	if !f.sd.active[ContainerdUnit] {
		return false, errors.New("ctr: connection refused")
	}
	if f.failing > 0 {
		f.failing--
		return false, errors.New("ctr: connection refused")
	}
	d, ok := f.have[ref]
	return ok && (digest == "" || d == digest), nil
}

func (f *imgFake) Import(_ context.Context, dir string) error {
	f.imports = append(f.imports, dir)
	for _, im := range f.inLayout {
		f.have[im.Ref] = im.Digest
	}
	return nil
}

var testImages = []plan.Image{
	{Ref: "harbor.od.com/public/pause:3.10", Digest: "sha256:aaaa"},
	{Ref: "harbor.od.com/public/coredns:v1.15.0", Digest: "sha256:bbbb"},
}

func TestImagesStartsContainerdAndImports(t *testing.T) {
	sd := newSDFake()
	img := &imgFake{sd: sd, inLayout: testImages, have: map[string]string{}, failing: 2}
	env := sdEnv(t, sd)
	env.Images = img
	steps := Images(testImages)
	if len(steps) != 1 || steps[0].ID() != "images/k8s.io" {
		t.Fatalf("steps %v", steps)
	}

	// Dry-run view with containerd down: says it will start it.
	st, err := steps[0].Check(context.Background(), env)
	if err != nil || st.Converged {
		t.Fatalf("Check: %+v, %v", st, err)
	}
	if d := strings.Join(st.Diff, "\n"); !strings.Contains(d, "start containerd.service") || !strings.Contains(d, "import harbor.od.com/public/pause:3.10@sha256:aaaa") {
		t.Errorf("diff:\n%s", d)
	}

	if got := sdRun(t, env, steps); len(got) != 1 {
		t.Fatalf("applied %q", got)
	}
	if want := []string{"reload", "start containerd.service"}; !reflect.DeepEqual(sd.calls, want) {
		t.Errorf("systemd calls %q, want %q", sd.calls, want)
	}
	if want := []string{filepath.Join(env.Bundle, "images")}; !reflect.DeepEqual(img.imports, want) {
		t.Errorf("imports %q, want %q", img.imports, want)
	}

	// Second run: converged, no import, no systemd call.
	sd.calls = nil
	if got := sdRun(t, env, steps); len(got) != 0 || len(img.imports) != 1 || len(sd.calls) != 0 {
		t.Errorf("second run applied %q, imports %q, calls %q", got, img.imports, sd.calls)
	}
}

func TestImagesImportOnlyWhenMissing(t *testing.T) {
	sd := newSDFake()
	sd.active[ContainerdUnit] = true
	for _, tc := range []struct {
		name       string
		have       map[string]string
		wantImport bool
	}{
		{"all present", map[string]string{testImages[0].Ref: "sha256:aaaa", testImages[1].Ref: "sha256:bbbb"}, false},
		{"one missing", map[string]string{testImages[0].Ref: "sha256:aaaa"}, true},
		{"other digest", map[string]string{testImages[0].Ref: "sha256:aaaa", testImages[1].Ref: "sha256:old"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := &imgFake{sd: sd, inLayout: testImages, have: tc.have}
			env := sdEnv(t, sd)
			env.Images = img
			sdRun(t, env, Images(testImages))
			if got := len(img.imports) == 1; got != tc.wantImport {
				t.Errorf("imported %v, want %v", got, tc.wantImport)
			}
		})
	}
	if Images(nil) != nil {
		t.Error("Images(nil) made a step")
	}
}

func TestImagesVerifyNamesWhatTheLayoutLacked(t *testing.T) {
	sd := newSDFake()
	sd.active[ContainerdUnit] = true
	// The layout's index.json does not name the coredns image.
	img := &imgFake{sd: sd, inLayout: testImages[:1], have: map[string]string{}}
	env := sdEnv(t, sd)
	env.Images = img
	s := Images(testImages)[0]
	if err := s.Apply(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	err := s.Verify(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "coredns") || strings.Contains(err.Error(), "pause") {
		t.Errorf("Verify: %v", err)
	}
}

func TestImagesContainerdStartFailure(t *testing.T) {
	sd := newSDFake()
	sd.startErr[ContainerdUnit] = errors.New(`job result "failed"`)
	sd.journal = "containerd[99]: failed to load plugin io.containerd.snapshotter.v1.overlayfs"
	env := sdEnv(t, sd)
	env.Images = &imgFake{sd: sd, have: map[string]string{}}
	err := Images(testImages)[0].Apply(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "overlayfs") {
		t.Errorf("Apply: %v, want the journal tail", err)
	}
}
