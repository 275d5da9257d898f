package matcher

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fields of the marker hash (markerKey).
const (
	markerCreated    = "created"
	markerRebuilding = "rebuilding"
	markerFormat     = "format"
)

// StoredFormat is the stored format this code writes, kept in the marker's
// format field (none: 1). Format 2 (2026-12-08) holds a cluster's version
// in its cl field and a settled entry's stub in its entry's side field;
// this code reads formats 1 and 2. A store that finds a later one when it
// takes a tenant refuses to apply (ErrNewerFormat): code before that
// change misreads format 2, and the field lets every version from this one
// on refuse what it would misread. The field is set if absent with a
// store's first write, and only ever raised.
const StoredFormat = 2

// RebuildCommand is the command that rebuilds namespace ns from scratch,
// named wherever a lost state is reported.
func RebuildCommand(ns string) string { return "leadconv replay --rebuild --namespace " + ns }

// Marker is what a namespace's marker (<ns>:meta) holds.
type Marker struct {
	// Created is set once the namespace holds its state: written with a
	// store's first write, or by EndRebuild.
	Created string
	// Rebuilding is set from BeginRebuild to EndRebuild: while it is set
	// without Created, the state is incomplete (a rebuild runs, or was
	// interrupted) and owners refuse to apply.
	Rebuilding string
	// Format is the stored format (StoredFormat): 1 where the field is
	// absent, state written before it existed.
	Format int
}

// ReadMarker reads the marker of namespace ns; the zero Marker when it is
// missing.
func ReadMarker(ctx context.Context, rdb redis.UniversalClient, ns string) (Marker, error) {
	v, err := rdb.HMGet(ctx, MarkerKey(ns), markerCreated, markerRebuilding, markerFormat).Result()
	if err != nil {
		return Marker{}, fmt.Errorf("matcher: read the marker of namespace %q: %w", ns, err)
	}
	str := func(x any) string { s, _ := x.(string); return s }
	return Marker{Created: str(v[0]), Rebuilding: str(v[1]), Format: parseFormat(str(v[2]))}, nil
}

// parseFormat reads the marker's format field: 1 where it is absent.
func parseFormat(s string) int {
	if f, err := strconv.Atoi(s); err == nil {
		return f
	}
	return 1
}

// BeginRebuild marks namespace ns as being rebuilt, before its other keys
// are deleted: until EndRebuild, owners other than the rebuild's own
// (StoreOptions.Rebuild) refuse to apply with ErrStateLost, so neither a
// live owner between the deletion and the replay nor an interrupted
// rebuild takes what is there for state.
func BeginRebuild(ctx context.Context, rdb redis.UniversalClient, ns string) error {
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, MarkerKey(ns), markerCreated)
		p.HSet(ctx, MarkerKey(ns), markerRebuilding, time.Now().UTC().Format(time.RFC3339))
		return nil
	})
	if err != nil {
		return fmt.Errorf("matcher: mark namespace %q as rebuilding: %w", ns, err)
	}
	return nil
}

// EndRebuild marks namespace ns as holding its state, after a rebuild
// applied everything.
func EndRebuild(ctx context.Context, rdb redis.UniversalClient, ns string) error {
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, MarkerKey(ns), markerCreated, time.Now().UTC().Format(time.RFC3339), markerFormat, StoredFormat)
		p.HDel(ctx, MarkerKey(ns), markerRebuilding)
		return nil
	})
	if err != nil {
		return fmt.Errorf("matcher: mark namespace %q as rebuilt: %w", ns, err)
	}
	return nil
}
