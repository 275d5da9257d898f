package writer

import (
	"testing"

	"github.com/leadconv/leadconv/schemas"
)

// checkSchema checks doc against schemas/<name>.v1.json.
func checkSchema(t *testing.T, name string, doc []byte) {
	t.Helper()
	if err := schemas.ValidateJSON(name, doc); err != nil {
		t.Errorf("%s: %v\n%s", name, err, doc)
	}
}
