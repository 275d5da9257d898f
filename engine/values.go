package engine

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/leadconv/leadconv/record"
)

// Date layouts by shape. The layout is picked from the value's shape so a
// parse is attempted once: a failed time.Parse allocates its error.
// time.Parse accepts fractional seconds after the seconds field even when the
// layout has none.
var dateLayouts = [2][3]string{
	{"2006-01-02T15:04:05", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z0700"},
	{"2006-01-02 15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05Z0700"},
}

// parseDate reads an ISO 8601 date ("2024-05-01") or date-time (RFC 3339,
// with or without zone, "T" or space separated, Salesforce's "+0000" zone).
// Date-times without zone are UTC.
func parseDate(v any) (time.Time, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case time.Time:
		return x, !x.IsZero()
	default:
		return time.Time{}, false
	}
	if len(s) == 10 {
		t, err := time.Parse(time.DateOnly, s)
		return t, err == nil
	}
	if len(s) < 19 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	sep := 0
	switch s[10] {
	case 'T':
	case ' ':
		sep = 1
	default:
		return time.Time{}, false
	}
	zone := 0
	n := len(s)
	switch {
	case s[n-1] == 'Z':
		zone = 1
	case n >= 25 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':':
		zone = 1
	case n >= 24 && (s[n-5] == '+' || s[n-5] == '-'):
		zone = 2
	}
	t, err := time.Parse(dateLayouts[sep][zone], s)
	return t, err == nil
}

// parseNumber reads numbers and numeric strings; NaN and infinities are not
// numbers here.
func parseNumber(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(x), 64); err != nil {
			return 0, false
		}
	case string:
		s := strings.TrimSpace(x)
		if s == "" || !strings.ContainsAny(s[:1], "0123456789+-.") {
			return 0, false
		}
		var err error
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// parseBool reads booleans, the numbers 1 and 0 (JSON sources send
// checkboxes as numbers) and the strings true/false, yes/no, 1/0 in any
// case.
func parseBool(v any) (value, ok bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case float64, float32, int, int64, json.Number:
		n, ok := parseNumber(x)
		return n == 1, ok && (n == 0 || n == 1)
	case string:
		s := strings.TrimSpace(x)
		switch {
		case s == "1" || strings.EqualFold(s, "true") || strings.EqualFold(s, "yes"):
			return true, true
		case s == "0" || strings.EqualFold(s, "false") || strings.EqualFold(s, "no"):
			return false, true
		}
	}
	return false, false
}

// text is a value as trimmed text ("" for blank).
func text(v any) string {
	if s, ok := v.(string); ok {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(record.String(v))
}
