package pipeline

import (
	"encoding/json"
	"reflect"
	"regexp"
	"testing"
	"time"
)

// dateTime is the pattern of schemas/common.v1.json#/$defs/dateTime, the
// reference for dateTimeShape.
var dateTime = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`)

// checkTimestamp holds dateTimeShape to the pattern and timestamp, given s
// as a JSON string, to the pattern and time.Parse.
func checkTimestamp(t *testing.T, s string) {
	t.Helper()
	if got, want := dateTimeShape([]byte(s)), dateTime.MatchString(s); got != want {
		t.Fatalf("%q: dateTimeShape %v, the pattern %v", s, got, want)
	}
	tok, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var u string
	if err := json.Unmarshal(tok, &u); err != nil {
		t.Fatal(err)
	}
	got, err := timestamp(tok, "modified_at")
	if !dateTime.MatchString(u) {
		if err == nil {
			t.Fatalf("%q: accepted off the pattern", s)
		}
		return
	}
	want, werr := time.Parse(time.RFC3339Nano, u)
	if (err == nil) != (werr == nil) || err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %v (%v), time.Parse %v (%v)", s, got, err, want, werr)
	}
}

var timestampSeeds = []string{
	"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05.1234567890Z",
	"2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+01:00", "2026-01-02T03:04:05.25-13:30", "2026-01-02T03:04:05+24:00",
	"2026-01-02T03:04:05+01:60", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29T00:00:00Z",
	"2023-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
	"2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-02T24:00:00Z", "2026-01-02T23:60:00Z", "2026-01-02T23:00:60Z",
	"2026-01-02t03:04:05Z", "2026-01-02T03:04:05z", "2026-01-02T03:04:05", "2026-01-02 03:04:05Z", "2026-1-02T03:04:05Z",
	"2026-01-02T03:04:05ZZ", "2026-01-02T03:04:05+0100", "", "Z", "２026-01-02T03:04:05Z",
}

func TestTimestamp(t *testing.T) {
	for _, s := range timestampSeeds {
		checkTimestamp(t, s)
	}
}

func FuzzTimestamp(f *testing.F) {
	for _, s := range timestampSeeds {
		f.Add(s)
	}
	f.Fuzz(checkTimestamp)
}
