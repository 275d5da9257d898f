package matcher

import (
	"slices"
	"testing"
)

// A run's arguments check each version as the first event to use it read
// it, and write each field's last value, deletes included.
func TestApplyArgsCoalescesARun(t *testing.T) {
	p1 := &pending{ref: "l:a"}
	p1.checks = []check{{field: "5", version: 3}, {cluster: true, field: "c1", version: 0}}
	p1.put(hSV, "5", "4")
	p1.put(hCL, "c1", "10\tl:a")
	p1.put(hCM, "l:a", "c1")
	p1.put(hCV, "c1", "1")
	p2 := &pending{ref: "l:b", ban: "+l:a"}
	p2.checks = []check{{field: "5", version: 4}, {field: "7", version: 9}, {cluster: true, field: "c1", version: 1}}
	p2.put(hSV, "5", "5")
	p2.put(hSV, "7", "10")
	p2.del(hCL, "c1")
	p2.put(hCV, "c1", "2")
	got := applyArgs([]*pending{p1, p2}, map[argKey]int{})
	want := []any{failTTL,
		2, "5", int64(3), "7", int64(9), // stripes: the first version seen
		1, "c1", int64(0), // clusters
		0, 0, // r
		0, 0, // b
		0, 0, // a
		1, "l:a", "c1", 0, // cm
		0, 1, "c1", // cl: set, then deleted
		1, "c1", "2", 0, // cv: the last value
		2, "5", "5", "7", "10", 0, // sv
		1, "l:b", "+l:a", // bans
	}
	if !slices.Equal(got, want) {
		t.Fatalf("args\n got %v\nwant %v", got, want)
	}
}
