package matcher

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// stripes is the number of optimistic-concurrency stripes per tenant: every
// block and every record hashes to one, and a write bumps the stripes of its
// record and of the blocks it touches.
const stripes = 4096

// keys holds one tenant's Redis keys. All carry the {tenant} hash tag, so a
// script touching several of them runs unchanged on Redis Cluster.
type keys struct {
	records  string // r: ref -> record value
	bans     string // x: ref -> banned refs
	blocks   string // b: block -> members or "!<count>"
	adj      string // a: ref -> neighbours
	clusterM string // cm: ref -> cluster id
	clusters string // cl: cluster id -> "oldest\tmembers"
	versions string // cv: cluster id -> version
	stripeV  string // sv: stripe -> version
	accounts string // acct: account key -> account id
	fail     string // fail:<batch>: set when a script of the batch conflicted
}

func tenantKeys(namespace, tenant string) keys {
	p := namespace + ":{" + tenant + "}:"
	return keys{
		records:  p + "r",
		bans:     p + "x",
		blocks:   p + "b",
		adj:      p + "a",
		clusterM: p + "cm",
		clusters: p + "cl",
		versions: p + "cv",
		stripeV:  p + "sv",
		accounts: p + "acct",
		fail:     p + "fail:",
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
func blockKey(b Block) (string, int) {
	h := fnv.New64a()
	h.Write([]byte(b.Rule))
	h.Write([]byte{0})
	h.Write([]byte(b.Key))
	sum := h.Sum64()
	k := strconv.FormatUint(sum, 16)
	if len(k) < 16 {
		k = strings.Repeat("0", 16-len(k)) + k
	}
	return k, int(sum % stripes)
}

func stripeOf(blockHex string) int {
	v, _ := strconv.ParseUint(blockHex, 16, 64)
	return int(v % stripes)
}

// stripeOfRef is the stripe that stands for a record's own value: every
// write of the record bumps it.
func stripeOfRef(ref string) int {
	h := fnv.New64a()
	h.Write([]byte(ref))
	return int(h.Sum64() % stripes)
}
