package pipeline_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
)

// A Handler without wall clock plans with the tenants' settle window in
// event time: three duplicates in one batch wait for the window,
// are planned once, at their latest version, when a later event moves
// event time past it, and Flush plans what is still pending at the end.
func TestHandlerSettlesInEventTime(t *testing.T) {
	srv := redistest.New(t)
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes}, ownersFor(srv, cfg), cfg)
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	people := map[string][]string{"ann@acme.io": {"Ann", "Lee", "Acme", "415-555-0100"}, "bob@other.io": {"Bob", "Stone", "Other", "212-555-0199"}}
	lead := func(off int64, id, email string, sec int) *kgo.Record {
		p := people[email]
		v, _ := json.Marshal(map[string]any{"tenant": "acme", "object": "lead", "id": id, "op": "upsert",
			"created_at": t0.Add(time.Duration(sec) * time.Second), "modified_at": t0.Add(time.Duration(sec) * time.Second),
			"fields": map[string]any{"FirstName": p[0], "LastName": p[1], "Email": email, "Company": p[2], "Phone": p[3]}})
		return &kgo.Record{Topic: recordsTopic, Offset: off, Value: v}
	}
	kinds := func(out []*kgo.Record) (n int, versions map[string]bool) {
		versions = map[string]bool{}
		for _, r := range out {
			if string(kafkatest.Header(r, "ce_type")) == "io.leadconv.lead.convert.v1" {
				n++
				var cmd struct {
					ClusterVersion int64 `json:"cluster_version"`
				}
				_ = json.Unmarshal(r.Value, &cmd)
				versions[fmt.Sprint(cmd.ClusterVersion)] = true
			}
		}
		return n, versions
	}
	res, err := h.Handle(t.Context(), recordsTopic, 0, []*kgo.Record{
		lead(0, "L1", "ann@acme.io", 0), lead(1, "L2", "ann@acme.io", 1), lead(2, "L3", "ann@acme.io", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := kinds(res.Out); n != 0 {
		t.Fatalf("%d conversions inside the settle window", n)
	}
	// Another person's lead three seconds later: the window has passed.
	res, err = h.Handle(t.Context(), recordsTopic, 0, []*kgo.Record{lead(3, "L9", "bob@other.io", 4), lead(4, "L8", "bob@other.io", 4)})
	if err != nil {
		t.Fatal(err)
	}
	if n, versions := kinds(res.Out); n != 3 || len(versions) != 1 {
		t.Fatalf("%d conversions at versions %v, want the three leads at one version", n, versions)
	}
	out, err := h.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := kinds(out); n != 2 {
		t.Fatalf("flush: %d conversions, want Bob's two", n)
	}
	if out, _ := h.Flush(t.Context()); len(out) != 0 {
		t.Errorf("a second flush emitted %d records", len(out))
	}
}

// ownersFor makes an owner (store) of namespace "t" per partition.
func ownersFor(srv *redistest.Server, cfg *config.File) pipeline.Owners {
	return func() pipeline.Owner {
		return matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: "t", Rules: cfg.Rules})
	}
}
