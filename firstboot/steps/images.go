package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// ContainerdUnit is the unit the images step starts when containerd is not
// running yet.
const ContainerdUnit = "containerd.service"

// containerd answers on its socket when the start job is done (its unit is
// Type=notify); these bound the wait for a unit that is not.
const (
	containerdReadyAttempts = 20
	containerdReadyInterval = 250 * time.Millisecond
)

// Images makes one step that imports the bundle's images/ (an OCI layout)
// into containerd's k8s.io namespace when any listed image is missing, so
// the kubelet finds them without a registry. None when imgs is empty.
//
// The plan runs this step before the unit steps, so containerd is usually
// not running yet: Apply then does a daemon-reload (the files step has just
// installed containerd.service) and starts containerd.service itself,
// waiting for the job's result. The later unit steps find containerd active
// and only enable it.
func Images(imgs []plan.Image) []engine.Step {
	if len(imgs) == 0 {
		return nil
	}
	return []engine.Step{imagesStep{imgs: imgs}}
}

type imagesStep struct{ imgs []plan.Image }

func (imagesStep) ID() string { return "images/k8s.io" }

func (s imagesStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	up, err := env.Systemd.Active(ctx, ContainerdUnit)
	if err != nil {
		return engine.Status{}, err
	}
	if !up {
		// ctr cannot ask a stopped containerd; Check does not start it.
		diff := []string{"start " + ContainerdUnit + " to import images"}
		for _, im := range s.imgs {
			diff = append(diff, "import "+imageName(im))
		}
		return engine.Status{Diff: diff}, nil
	}
	missing, err := s.missing(ctx, env)
	if err != nil {
		return engine.Status{}, err
	}
	if len(missing) == 0 {
		return engine.Status{Converged: true}, nil
	}
	var diff []string
	for _, im := range missing {
		diff = append(diff, "import "+imageName(im))
	}
	return engine.Status{Diff: diff}, nil
}

func (s imagesStep) Apply(ctx context.Context, env *engine.Env) error {
	up, err := env.Systemd.Active(ctx, ContainerdUnit)
	if err != nil {
		return err
	}
	if !up {
		if err := env.Systemd.Reload(ctx); err != nil {
			return err
		}
		if err := env.Systemd.Start(ctx, ContainerdUnit); err != nil {
			return withJournal(ctx, env, ContainerdUnit, err)
		}
	}
	missing, err := s.waitMissing(ctx, env)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	dir := filepath.Join(env.Bundle, plan.ImagesDir)
	if err := env.Images.Import(ctx, dir); err != nil {
		return err
	}
	return nil
}

func (s imagesStep) Verify(ctx context.Context, env *engine.Env) error {
	missing, err := s.missing(ctx, env)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		var names []string
		for _, im := range missing {
			names = append(names, imageName(im))
		}
		return fmt.Errorf("not in containerd after import (does images/index.json name them?): %v", names)
	}
	return nil
}

func (s imagesStep) missing(ctx context.Context, env *engine.Env) ([]plan.Image, error) {
	var out []plan.Image
	for _, im := range s.imgs {
		ok, err := env.Images.Present(ctx, im.Ref, im.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Ref, err)
		}
		if !ok {
			out = append(out, im)
		}
	}
	return out, nil
}

// waitMissing is missing, retried while containerd is still coming up.
func (s imagesStep) waitMissing(ctx context.Context, env *engine.Env) ([]plan.Image, error) {
	var err error
	for i := 0; i < containerdReadyAttempts; i++ {
		var out []plan.Image
		if out, err = s.missing(ctx, env); err == nil {
			return out, nil
		}
		if i < containerdReadyAttempts-1 {
			if serr := sleepCtx(ctx, containerdReadyInterval); serr != nil {
				return nil, serr
			}
		}
	}
	return nil, fmt.Errorf("containerd not answering: %w", err)
}

func imageName(im plan.Image) string {
	if im.Digest == "" {
		return im.Ref
	}
	return im.Ref + "@" + im.Digest
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
