package redistest

import (
	"context"
	"testing"
)

func TestServerRestartDropsData(t *testing.T) {
	s := New(t)
	c := s.Client()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("get = %q, want v", got)
	}
	if s.External {
		return
	}
	s.Restart()
	if n := c.Exists(ctx, "k").Val(); n != 0 {
		t.Fatalf("key survived restart without persistence: exists=%d", n)
	}
	if _, err := UsedMemory(ctx, c); err != nil {
		t.Fatal(err)
	}
}
