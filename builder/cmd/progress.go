package cmd

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/kubebake/kubebake/builder/build"
)

// isTerminal reports whether w is a character device and CI is not set.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("CI") != "" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// reporter shows build progress: bars on a terminal, a plain line per phase
// and per finished bundle otherwise (CI logs stay short and greppable).
type reporter struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	p     *mpb.Progress
	bars  map[string]*mpb.Bar
	lastN map[string]int
}

func newReporter(w io.Writer) *reporter {
	r := &reporter{w: w, tty: isTerminal(w), bars: map[string]*mpb.Bar{}, lastN: map[string]int{}}
	if r.tty {
		r.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	}
	return r
}

func (r *reporter) event(e build.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.tty {
		switch {
		case e.Msg == "start" || e.Msg == "done":
			fmt.Fprintf(r.w, "%-9s %s\n", e.Phase, e.Msg)
		case e.Phase == "bundle" && e.Done > r.lastN[e.Phase]:
			fmt.Fprintf(r.w, "%-9s %d/%d bundles written; %s\n", e.Phase, e.Done, e.Total, e.Msg)
		case e.Phase == "pull" && e.Done > r.lastN[e.Phase]:
			fmt.Fprintf(r.w, "%-9s %d/%d artifacts (%s)\n", e.Phase, e.Done, e.Total, e.Msg)
		}
		r.lastN[e.Phase] = e.Done
		return
	}
	if e.Total == 0 {
		return
	}
	bar := r.bars[e.Phase]
	if bar == nil {
		bar = r.p.AddBar(int64(e.Total),
			mpb.PrependDecorators(decor.Name(e.Phase, decor.WC{C: decor.DindentRight | decor.DextraSpace}), decor.CountersNoUnit("%d/%d")),
			mpb.AppendDecorators(decor.Percentage()))
		r.bars[e.Phase] = bar
	}
	bar.SetTotal(int64(e.Total), false)
	bar.SetCurrent(int64(e.Done))
}

// close completes every bar and waits for the renderer.
func (r *reporter) close() {
	if r.p == nil {
		return
	}
	for _, b := range r.bars {
		b.SetTotal(-1, true)
	}
	r.p.Wait()
}
