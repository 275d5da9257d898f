package lifecycle

import (
	"slices"
	"testing"

	"github.com/leadconv/leadconv/engine"
)

// A stub is its entry's claims, read back as written.
func TestStub(t *testing.T) {
	tests := []struct {
		name  string
		state engine.State
		want  string
	}{
		{"nothing claimed", engine.State{}, ""},
		{"a converted lead and its contact", engine.State{Master: engine.Target{ID: "C1"}, Converted: []string{"L1", "L2"}}, "contact/C1 lead/L1 lead/L2"},
		{"a contact still pending", engine.State{Master: engine.Target{FromLead: "L3"}, Merged: []engine.Target{{ID: "C/9"}}}, "contact/C/9 lead/L3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Entry{ClusterID: "k1", State: tt.state, Settled: true}
			got := string(e.AppendStub(nil))
			if got != tt.want {
				t.Fatalf("AppendStub = %q, want %q", got, tt.want)
			}
			st, err := ParseStub("k1", got)
			if err != nil || st.ClusterID != "k1" || !slices.Equal(st.Claims, e.State.Claims()) {
				t.Fatalf("ParseStub = %+v, %v; want the claims %v", st, err, e.State.Claims())
			}
		})
	}
	if _, err := ParseStub("k1", "lead/L1 L2"); err == nil {
		t.Fatal("a stub with a word that is not a ref was read")
	}
}
