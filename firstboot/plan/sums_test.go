package plan

import (
	"strings"
	"testing"
)

func TestSums(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("B", 64)
	in := FormatSums([]Sum{{SHA256: b, Path: "rootfs/x"}, {SHA256: a, Path: "bundle.json"}})
	if string(in) != a+"  bundle.json\n"+b+"  rootfs/x\n" {
		t.Fatalf("FormatSums = %q", in)
	}
	raw := string(in) + "\n" + "zz  short\n" + strings.Repeat("g", 64) + "  bad\n" + a + " *./bundle.json\n" + a + " *./firstboot\n"
	sums, probs, err := ParseSums([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 3 || sums[1].SHA256 != strings.ToLower(b) || sums[2].Path != "firstboot" || sums[2].Line != 7 {
		t.Fatalf("sums = %+v", sums)
	}
	want := []SumProblem{{Line: 4, Kind: SumMalformed}, {Line: 5, Kind: SumNotHex}, {Line: 6, Kind: SumDuplicate, Path: "bundle.json", FirstLine: 1}}
	if len(probs) != len(want) {
		t.Fatalf("problems = %+v", probs)
	}
	for i := range want {
		if probs[i] != want[i] {
			t.Errorf("problem %d = %+v, want %+v", i, probs[i], want[i])
		}
	}
}
