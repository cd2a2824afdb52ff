// Package pxe writes what a site needs to install the spec's hosts over the
// network with CentOS 7's installer: a kickstart per host, pxelinux (BIOS),
// GRUB (UEFI) and iPXE entries, an initrd overlay per host (newc cpio,
// gzip) holding the kickstart and, with pxe.bundleDelivery: initrd, the
// bundle, and a dnsmasq snippet. It reads the bundles bake wrote:
//
//	out/pxe/
//	  ks/<host>.cfg                      kickstart per host
//	  http/bundles/<host>.tar.gz         the host's bundle (hard link to out/<host>.tar.gz, else a copy)
//	  http/ks/<host>.cfg                 the same kickstart, served over HTTP
//	  http/ipxe/<host>.ipxe              iPXE script per host
//	  http/SHA256SUMS                    sha256sum(1) lines for every other file under http/
//	  tftp/pxelinux.cfg/01-<mac-dashes>  BIOS entry per MAC
//	  tftp/grub.cfg-01-<mac>             UEFI entry per MAC
//	  tftp/overlay/<host>.cpio.gz        initrd overlay
//	  dnsmasq.conf                       DHCP/TFTP snippet
//
// Every file is written under a temporary name and renamed; the same
// spec, bundles and epoch give the same bytes. Files are 0644, like the
// bundles they sit beside (which hold the hosts' private keys): the tree is
// read by dnsmasq's TFTP (an unprivileged user) and by kubebake serve, and
// is protected by where it lives (out/, an isolated provisioning network),
// not by file modes. The kickstarts hold root's password hash.
package pxe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/internal/atomicfile"
)

// Layout, relative to the output directory.
const (
	Dir         = "pxe"
	KSDir       = "ks"
	HTTPDir     = "http"
	TFTPDir     = "tftp"
	DnsmasqName = "dnsmasq.conf"
	SumsName    = "SHA256SUMS"
	fileMode    = 0o644
	dirMode     = 0o755
	bundlesRel  = "bundles"
	ipxeRel     = "ipxe"
	pxecfgRel   = "pxelinux.cfg"
	overlayDir  = "overlay"
)

// Host is what Generate wrote for one host.
type Host struct {
	Name, IP     string
	MACs         []string
	BundleSHA256 string
	Kickstart    string   // out/pxe/ks/<host>.cfg
	Overlay      string   // out/pxe/tftp/overlay/<host>.cpio.gz
	OverlaySHA   string   // sha256 of the overlay
	Entries      []string // boot entries: pxelinux, grub per MAC, then iPXE
	Linked       bool     // http/bundles/<host>.tar.gz is a hard link (else a copy)
}

// Result is what Generate wrote.
type Result struct {
	Dir      string // out/pxe
	Hosts    []Host
	Sums     string   // out/pxe/http/SHA256SUMS
	Dnsmasq  string   // out/pxe/dnsmasq.conf
	TFTPRoot string   // what dnsmasq.conf names as tftp-root
	Pruned   []string // per-host files of hosts the spec no longer has, removed
}

// Generate writes out/pxe for every host of s from the bundles in the
// output directory. s must have a pxe: section and be valid.
func Generate(ctx context.Context, s *spec.Spec, opts ...Option) (*Result, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if s.PXE == nil {
		return nil, ErrNoPXE
	}
	epoch := s.Bundle.SourceDateEpoch
	if o.epoch > 0 {
		epoch = o.epoch
	}
	if epoch <= 0 {
		return nil, errors.New("no fixed timestamp for overlay entries: set bundle.sourceDateEpoch in the spec or SOURCE_DATE_EPOCH in the environment")
	}
	mtime := time.Unix(epoch, 0)
	sec, err := ReadSecrets(s, o.lookup)
	if err != nil {
		return nil, err
	}
	sums, err := bundleSums(o.outDir)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(o.outDir, Dir)
	for _, d := range []string{KSDir, filepath.Join(HTTPDir, bundlesRel), filepath.Join(HTTPDir, KSDir), filepath.Join(HTTPDir, ipxeRel),
		filepath.Join(TFTPDir, pxecfgRel), filepath.Join(TFTPDir, overlayDir)} {
		if err := os.MkdirAll(filepath.Join(root, d), dirMode); err != nil {
			return nil, err
		}
	}
	tftpRoot := s.PXE.TFTPRoot
	if tftpRoot == "" {
		if tftpRoot, err = filepath.Abs(filepath.Join(root, TFTPDir)); err != nil {
			return nil, err
		}
	}
	res := &Result{Dir: root, TFTPRoot: tftpRoot}
	var httpSums []plan.Sum
	for i, h := range s.Hosts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		want, ok := sums[h.Name+".tar.gz"]
		if !ok {
			return nil, fmt.Errorf("%w %s: not in %s; run kubebake bake first", ErrBundle, h.Name, filepath.Join(o.outDir, SumsName))
		}
		hr, hs, err := writeHost(s, h, sec, want, o.outDir, root, mtime)
		if err != nil {
			return nil, fmt.Errorf("pxe %s: %w", h.Name, err)
		}
		res.Hosts = append(res.Hosts, hr)
		httpSums = append(httpSums, hs...)
		o.logger.Info("pxe host written", "host", h.Name, "bundle", want, "delivery", s.PXE.BundleDelivery, "overlay", hr.Overlay, "linked", hr.Linked)
		o.progress(Progress{Done: i + 1, Total: len(s.Hosts), Host: h.Name})
	}
	// A machine with no entry of its own boots its disk: never an
	// installing default, and no five-minute "Boot failed" reset loop.
	for rel, b := range map[string][]byte{
		filepath.Join(pxecfgRel, "default"): []byte(pxelinuxLocal),
		"grub.cfg":                          []byte(grubLocal),
	} {
		if err := atomicfile.WriteFile(filepath.Join(root, TFTPDir, rel), b, fileMode); err != nil {
			return nil, err
		}
	}
	dm, err := Dnsmasq(s, tftpRoot)
	if err != nil {
		return nil, err
	}
	res.Dnsmasq = filepath.Join(root, DnsmasqName)
	if err := atomicfile.WriteFile(res.Dnsmasq, dm, fileMode); err != nil {
		return nil, err
	}
	if res.Pruned, err = prune(root, s); err != nil {
		return nil, err
	}
	res.Sums = filepath.Join(root, HTTPDir, SumsName)
	if err := atomicfile.WriteFile(res.Sums, plan.FormatSums(httpSums), fileMode); err != nil {
		return nil, err
	}
	return res, nil
}

// bundleSums reads out/SHA256SUMS into file name → sha256.
func bundleSums(out string) (map[string]string, error) {
	p := filepath.Join(out, SumsName)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; run kubebake bake first", ErrBundle, err)
	}
	list, probs, err := plan.ParseSums(b)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%w: %s line %d is malformed", ErrBundle, p, probs[0].Line)
	}
	m := map[string]string{}
	for _, x := range list {
		m[x.Path] = x.SHA256
	}
	return m, nil
}

func writeHost(s *spec.Spec, h spec.Host, sec Secrets, want, out, root string, mtime time.Time) (Host, []plan.Sum, error) {
	hr := Host{Name: h.Name, IP: h.IP, MACs: h.MACs, BundleSHA256: want}
	var sums []plan.Sum
	sum := func(rel string, b []byte) {
		d := sha256.Sum256(b)
		sums = append(sums, plan.Sum{SHA256: hex.EncodeToString(d[:]), Path: rel})
	}
	ks, err := Kickstart(s, h, sec, want)
	if err != nil {
		return hr, nil, err
	}
	hr.Kickstart = filepath.Join(root, KSDir, h.Name+".cfg")
	for _, p := range []string{hr.Kickstart, filepath.Join(root, HTTPDir, KSDir, h.Name+".cfg")} {
		if err := atomicfile.WriteFile(p, ks, fileMode); err != nil {
			return hr, nil, err
		}
	}
	sum(KSDir+"/"+h.Name+".cfg", ks)

	src := filepath.Join(out, h.Name+".tar.gz")
	initrd := s.PXE.BundleDelivery == "initrd"
	entries := []OverlayEntry{{Path: "ks.cfg", Mode: fileMode, Data: ks}}
	if initrd {
		// The overlay pass reads the bundle once and checks its sha256.
		entries = append(entries,
			OverlayEntry{Path: OverlayBundle, Mode: fileMode, File: src, SHA256: want},
			OverlayEntry{Path: hookPath, Mode: 0o755, Data: []byte(hookScript)})
	}
	hr.Overlay = filepath.Join(root, TFTPDir, overlayDir, h.Name+".cpio.gz")
	f, err := atomicfile.Create(hr.Overlay, fileMode)
	if err != nil {
		return hr, nil, err
	}
	defer f.Abort()
	if hr.OverlaySHA, err = WriteOverlay(f, entries, mtime); err != nil {
		return hr, nil, err
	}
	if err := f.Commit(); err != nil {
		return hr, nil, err
	}

	dst := filepath.Join(root, HTTPDir, bundlesRel, h.Name+".tar.gz")
	if hr.Linked, err = linkOrCopy(src, dst, want, !initrd); err != nil {
		return hr, nil, err
	}
	sums = append(sums, plan.Sum{SHA256: want, Path: bundlesRel + "/" + h.Name + ".tar.gz"})

	ipxe, err := IPXE(s, h)
	if err != nil {
		return hr, nil, err
	}
	ip := filepath.Join(root, HTTPDir, ipxeRel, h.Name+".ipxe")
	if err := atomicfile.WriteFile(ip, ipxe, fileMode); err != nil {
		return hr, nil, err
	}
	sum(ipxeRel+"/"+h.Name+".ipxe", ipxe)

	for _, mac := range h.MACs {
		pl, err := PXELinux(s, h, mac)
		if err != nil {
			return hr, nil, err
		}
		gr, err := Grub(s, h, mac)
		if err != nil {
			return hr, nil, err
		}
		pp := filepath.Join(root, TFTPDir, pxecfgRel, PXELinuxName(mac))
		gp := filepath.Join(root, TFTPDir, GrubName(mac))
		if err := atomicfile.WriteFile(pp, pl, fileMode); err != nil {
			return hr, nil, err
		}
		if err := atomicfile.WriteFile(gp, gr, fileMode); err != nil {
			return hr, nil, err
		}
		hr.Entries = append(hr.Entries, pp, gp)
	}
	hr.Entries = append(hr.Entries, ip)
	return hr, sums, nil
}

// linkOrCopy puts src at dst: a hard link when both are on one file
// system, else a copy; either way under a temporary name first. With
// verify, src's sha256 is checked against want (while copying, or by
// reading the linked file once).
func linkOrCopy(src, dst, want string, verify bool) (linked bool, err error) {
	if a, err1 := os.Stat(src); err1 != nil {
		return false, fmt.Errorf("%w: %w", ErrBundle, err1)
	} else if b, err2 := os.Stat(dst); err2 == nil && os.SameFile(a, b) {
		linked = true
	}
	if !linked {
		tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".link-tmp")
		os.Remove(tmp)
		if err := os.Link(src, tmp); err == nil {
			if err := os.Rename(tmp, dst); err != nil {
				os.Remove(tmp)
				return false, err
			}
			if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
				return false, err
			}
			linked = true
		}
	}
	if linked {
		if verify {
			return true, checkFile(dst, want)
		}
		return true, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	out, err := atomicfile.Create(dst, fileMode)
	if err != nil {
		return false, err
	}
	defer out.Abort()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		return false, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return false, fmt.Errorf("%w: %s has sha256 %s, SHA256SUMS says %s", ErrBundle, src, got, want)
	}
	return false, out.Commit()
}

func checkFile(p, want string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%w: %s has sha256 %s, SHA256SUMS says %s", ErrBundle, p, got, want)
	}
	return nil
}

// prune removes the per-host files of hosts s no longer has (out/pxe is
// kubebake's alone), so nothing stale is served.
func prune(root string, s *spec.Spec) ([]string, error) {
	keep := map[string]bool{}
	for _, h := range s.Hosts {
		keep[filepath.Join(root, KSDir, h.Name+".cfg")] = true
		keep[filepath.Join(root, HTTPDir, KSDir, h.Name+".cfg")] = true
		keep[filepath.Join(root, HTTPDir, bundlesRel, h.Name+".tar.gz")] = true
		keep[filepath.Join(root, HTTPDir, ipxeRel, h.Name+".ipxe")] = true
		keep[filepath.Join(root, TFTPDir, overlayDir, h.Name+".cpio.gz")] = true
		for _, m := range h.MACs {
			keep[filepath.Join(root, TFTPDir, pxecfgRel, PXELinuxName(m))] = true
			keep[filepath.Join(root, TFTPDir, GrubName(m))] = true
		}
	}
	var pruned []string
	for _, pat := range []string{
		filepath.Join(root, KSDir, "*.cfg"), filepath.Join(root, HTTPDir, KSDir, "*.cfg"),
		filepath.Join(root, HTTPDir, bundlesRel, "*.tar.gz"), filepath.Join(root, HTTPDir, ipxeRel, "*.ipxe"),
		filepath.Join(root, TFTPDir, overlayDir, "*.cpio.gz"), filepath.Join(root, TFTPDir, pxecfgRel, "01-*"),
		filepath.Join(root, TFTPDir, "grub.cfg-01-*"),
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, err
		}
		for _, p := range m {
			if keep[p] || strings.HasPrefix(filepath.Base(p), ".") {
				continue
			}
			if err := os.Remove(p); err != nil {
				return nil, err
			}
			pruned = append(pruned, p)
		}
	}
	sort.Strings(pruned)
	return pruned, nil
}
