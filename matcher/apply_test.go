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

// When a decision stops on an event that lacks data, the redo starts at
// the first event no call holds, even when skipped or replayed events were
// decided after it.
func TestFirstUnsent(t *testing.T) {
	ev := make([]*pending, 5)
	for i := range ev {
		ev[i] = &pending{idx: i}
	}
	for _, c := range []struct {
		name    string
		decided int
		run     []*pending
		want    int
	}{
		{"all decided events sent", 3, nil, 3},
		{"nothing decided", 0, nil, 0},
		{"a run waiting", 3, ev[2:3], 2},
		{"a skipped event decided after the run's first", 4, []*pending{ev[1], ev[3]}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := firstUnsent(ev, c.decided, c.run); got != c.want {
				t.Fatalf("firstUnsent = %d, want %d", got, c.want)
			}
		})
	}
}
