package matcher

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// The hashes of a tenant, indexes of keys.hashes and tenantWrite.hashes.
const (
	hR = iota
	hB
	hA
	hCM
	hCL
	hCV
	hX
	hAcct
	nHashes
)

// hashNames names the hashes of a tenant write (tenantWrite.hashes) in
// metrics.
var hashNames = [nHashes + 2]string{"r", "b", "a", "cm", "cl", "cv", "x", "acct", "side", "shelf"}

// keys holds one tenant's Redis keys. All carry the {tenant} hash tag, so
// every call touching several of them stays in one slot of a Redis Cluster.
type keys struct {
	epoch  string          // the owner epoch
	hashes [nHashes]string // r, b, a, cm, cl, cv, x, acct
	side   string          // the owner's side state read at take (Side.Taken)
	shelf  string          // the owner's side state read by field (Side.Shelved)
}

// MarkerKey is the namespace's state marker, a hash with the field
// "created": written before the first state of the namespace, and missing
// only if Redis lost what it held, or while a rebuild runs ("rebuilding",
// marker.go; README.md, State loss).
func MarkerKey(namespace string) string { return namespace + ":meta" }

// sideIndexKey is the set of the tenants with side state of one owner's
// name (Store.IndexSide).
func sideIndexKey(namespace, name string) string { return namespace + ":side:" + name }

func tenantKeys(namespace, tenant string) keys {
	p := namespace + ":{" + tenant + "}:"
	return keys{
		epoch:  p + "epoch",
		hashes: [nHashes]string{p + "r", p + "b", p + "a", p + "cm", p + "cl", p + "cv", p + "x", p + "acct"},
		side:   p + "side",
		shelf:  p + "shelf",
	}
}

// refKey is the compact form of a ref inside Redis values: "l:<id>",
// "c:<id>" or "a:<id>".
func refKey(r record.Ref) string {
	return string(r.Object[0]) + ":" + r.ID
}

func parseRefKey(s string) (record.Ref, bool) {
	if len(s) < 3 || s[1] != ':' {
		return record.Ref{}, false
	}
	var o record.Object
	switch s[0] {
	case 'l':
		o = record.Lead
	case 'c':
		o = record.Contact
	case 'a':
		o = record.Account
	default:
		return record.Ref{}, false
	}
	return record.Ref{Object: o, ID: s[2:]}, true
}

// blockKey hashes a rule's blocking key to 16 hex digits: short, free of
// separators and of the personal data it was built from.
func blockKey(b Block) string {
	h := fnv.New64a()
	h.Write([]byte(b.Rule))
	h.Write([]byte{0})
	h.Write([]byte(b.Key))
	k := strconv.FormatUint(h.Sum64(), 16)
	if len(k) < 16 {
		k = strings.Repeat("0", 16-len(k)) + k
	}
	return k
}
