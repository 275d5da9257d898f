package matcher

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// view is one tenant's resident state in its owner: every key of the
// tenant's hashes the owner read or wrote, as Redis holds it (the owner is
// the only writer, and writes through). A key present in a map is known,
// with "" (or nil, or 0) for absent in Redis; a complete view knows every
// key, so a missing one is absent without asking. Each batch is decided
// against it, in order, each event seeing what the events before it left.
type view struct {
	run      *tenantRun
	lastUse  uint64
	complete bool
	recs     map[string]stored
	blocks   map[string]*blockView
	bans     map[string]string
	cm       map[string]string
	adj      map[string]string
	cl       map[string]*clusterVal // nil: absent
	cv       map[string]int64       // known with cl, never alone (see)
	acct     map[string]string
	// bytes is the size estimate last accounted, measured the last
	// measure, entries the key count then.
	bytes, measured, entries int64
	// per batch: the writes, the account lookups
	writes         [nHashes]map[string]*string // nil value: delete
	accountLookups []accountLookup
	// seen is neighbours' scratch set, reused from event to event.
	seen map[string]bool
}

// clusterVal is a stored cluster: its oldest member's creation time and its
// sorted members.
type clusterVal struct {
	oldest  int64
	members []string
}

// A cl value holds a cluster's version with it, "v<version>\t<oldest
// created>\t<member refs>", or "v<version>" alone once the cluster is gone
// (a change reports the version it went at): one field per cluster change.
// Values written before the version moved in are "<oldest>\t<members>",
// their version in the cv hash, which is still read and no longer written.

// parseCluster reads a cl value: the cluster (nil for none) and, if the
// value holds it, its version.
func parseCluster(raw string) (c *clusterVal, version int64, folded bool) {
	if rest, ok := strings.CutPrefix(raw, "v"); ok {
		ver, tail, _ := strings.Cut(rest, "\t")
		version, _ = strconv.ParseInt(ver, 10, 64)
		if tail == "" {
			return nil, version, true
		}
		raw, folded = tail, true
	}
	if raw == "" {
		return nil, version, folded
	}
	o, members, _ := strings.Cut(raw, "\t")
	c = &clusterVal{members: strings.Fields(members)}
	c.oldest, _ = strconv.ParseInt(o, 10, 64)
	return c, version, folded
}

// clusterValue is the cl value of cluster c (nil: gone) at version.
func clusterValue(version int64, c *clusterVal) string {
	n := 44 // "v", two int64s, two tabs
	if c != nil {
		for _, m := range c.members {
			n += len(m) + 1
		}
	}
	b := strconv.AppendInt(append(make([]byte, 0, n), 'v'), version, 10)
	if c != nil {
		b = append(strconv.AppendInt(append(b, '\t'), c.oldest, 10), '\t')
		for i, m := range c.members {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, m...)
		}
	}
	return string(b)
}

type blockView struct {
	members  []string
	count    int
	poisoned bool
}

func newView() *view {
	return &view{
		recs:   map[string]stored{},
		blocks: map[string]*blockView{},
		bans:   map[string]string{},
		cm:     map[string]string{},
		adj:    map[string]string{},
		cl:     map[string]*clusterVal{},
		cv:     map[string]int64{},
		acct:   map[string]string{},
	}
}

func parseBlock(raw string) *blockView {
	b := &blockView{}
	if strings.HasPrefix(raw, "!") {
		b.poisoned = true
		b.count, _ = strconv.Atoi(raw[1:])
		return b
	}
	b.members = strings.Fields(raw)
	b.count = len(b.members)
	return b
}

// adjOf, cmOf and block read the view: ok is false when it does not know
// the key (a complete view knows every key: a missing one is absent).
func (v *view) adjOf(ref string) (string, bool) {
	a, ok := v.adj[ref]
	return a, ok || v.complete
}

func (v *view) cmOf(ref string) (string, bool) {
	id, ok := v.cm[ref]
	return id, ok || v.complete
}

func (v *view) block(b string) *blockView {
	bv := v.blocks[b]
	if bv == nil && v.complete {
		bv = &blockView{}
		v.blocks[b] = bv
	}
	return bv
}

// knows reports whether the view holds field of hash h (absent included).
func (v *view) knows(h int, field string) bool {
	var ok bool
	switch h {
	case hR:
		_, ok = v.recs[field]
	case hB:
		_, ok = v.blocks[field]
	case hA:
		_, ok = v.adj[field]
	case hCM:
		_, ok = v.cm[field]
	case hCL:
		_, ok = v.cl[field]
	case hCV:
		_, ok = v.cv[field]
	case hX:
		_, ok = v.bans[field]
	case hAcct:
		_, ok = v.acct[field]
	}
	return ok
}

// see records field of hash h as Redis holds it ("" for absent).
func (v *view) see(h int, field, raw string) {
	switch h {
	case hR:
		st, err := parseStored(raw)
		if err != nil {
			// A value this code did not write: treat it as absent.
			st = stored{}
		}
		v.recs[field] = st
	case hB:
		v.blocks[field] = parseBlock(raw)
	case hA:
		v.adj[field] = raw
	case hCM:
		v.cm[field] = raw
	case hCL:
		c, ver, folded := parseCluster(raw)
		v.cl[field] = c
		if folded {
			v.cv[field] = ver
		}
	case hCV:
		// Read with cl, for values written before cl held the version;
		// the one a cl value holds wins, whichever is seen first.
		if _, ok := v.cv[field]; !ok {
			v.cv[field], _ = strconv.ParseInt(raw, 10, 64)
		}
	case hX:
		v.bans[field] = raw
	case hAcct:
		v.acct[field] = raw
	}
}

// keyCount is the number of keys the view holds.
func (v *view) keyCount() int64 {
	return int64(len(v.recs) + len(v.blocks) + len(v.adj) + len(v.cm) + len(v.cl) + len(v.cv) + len(v.bans) + len(v.acct))
}

// account updates the view's share of the budget: measured again when its
// key count moved by a quarter since the last measure, scaled by the count
// otherwise, so a batch costs no walk over the whole state.
func (v *view) account(r *Resident) {
	n := v.keyCount()
	var b int64
	if v.entries == 0 || n > v.entries*5/4 || n < v.entries*3/4 {
		b = v.measure()
		v.entries, v.measured = n, b
	} else {
		b = v.measured * n / v.entries
	}
	r.bytes.Add(b - v.bytes)
	v.bytes = b
}

// mapEntry is Go's rough cost of one map entry besides its strings.
const mapEntry = 48

// measure estimates the view's bytes from its keys and values.
func (v *view) measure() int64 {
	var b int64
	for k, st := range v.recs {
		// The value, and its decoded form in the prepared cache when live.
		b += int64(len(k)+len(st.raw)+17*len(st.blocks)) + mapEntry + 64
	}
	for k, bv := range v.blocks {
		b += int64(len(k)+8*len(bv.members)+12*len(bv.members)) + mapEntry + 48
	}
	for k, x := range v.adj {
		b += int64(len(k)+len(x)) + mapEntry
	}
	for k, x := range v.cm {
		b += int64(len(k)+len(x)) + mapEntry
	}
	for k, c := range v.cl {
		b += int64(len(k)) + mapEntry
		if c != nil {
			b += 40 + 28*int64(len(c.members))
		}
	}
	b += int64(len(v.cv)) * (16 + 8 + mapEntry)
	for k, x := range v.bans {
		b += int64(len(k)+len(x)) + mapEntry
	}
	for k, x := range v.acct {
		b += int64(len(k)+len(x)) + mapEntry
	}
	return b
}

// shed drops about one in every n keys of each map: the view stops being
// complete, and what it needs of them is read again.
func (v *view) shed(n int) {
	v.complete = false
	i := 0
	drop := func() bool { i++; return i%n == 1 }
	shedMap(v.recs, drop)
	shedMap(v.blocks, drop)
	shedMap(v.adj, drop)
	shedMap(v.cm, drop)
	shedMap(v.cl, drop)
	// A version goes with its cluster: read alone again, it would come
	// from the cv hash, stale for a cluster written since cl held it.
	for k := range v.cv {
		if _, ok := v.cl[k]; !ok {
			delete(v.cv, k)
		}
	}
	shedMap(v.bans, drop)
	shedMap(v.acct, drop)
	v.entries = 0 // measure again
}

// shedMap deletes the entries of m for which drop says so.
func shedMap[V any](m map[string]V, drop func() bool) {
	for k := range m {
		if drop() {
			delete(m, k)
		}
	}
}

// put and del record one write of the batch (the last of a field wins) and
// lay it over the view.
func (v *view) put(h int, field, value string) {
	if v.writes[h] == nil {
		v.writes[h] = map[string]*string{}
	}
	v.writes[h][field] = &value
}

func (v *view) del(h int, field string) {
	if v.writes[h] == nil {
		v.writes[h] = map[string]*string{}
	}
	v.writes[h][field] = nil
}

// blocksOf prepares rec and returns its sorted, de-duplicated block keys.
func (v *view) blocksOf(p *pending, rec *record.Record) []string {
	p.prep = v.run.rules.Prepare(rec)
	if !p.prep.Active || rec.Object == record.Account {
		return nil
	}
	keys, rules := blockKeys(p.prep)
	p.rules = rules
	return keys
}

// prepared takes an upsert's blocks from its eventPrep.
func (v *view) prepared(p *pending) []string {
	p.prep = p.pre.prep
	p.rules = p.pre.rules
	return p.pre.keys
}

// blockKeys returns the sorted, de-duplicated block keys of prep, and the
// rule each came from (for warnings).
func blockKeys(prep *Prepared) ([]string, map[string]string) {
	keys := make([]string, 0, len(prep.Blocks))
	rules := make(map[string]string, len(prep.Blocks))
	for _, b := range prep.Blocks {
		k := blockKey(b)
		rules[k] = b.Rule
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys), rules
}

// states walks the events in order and computes the record state each one
// leads to. None of this depends on matching, so it runs before the
// candidate reads that the new states' blocks call for.
func (v *view) states() error {
	cur := map[string]stored{}
	for _, p := range v.run.events {
		base, ok := cur[p.ref]
		if !ok {
			base = v.recs[p.ref]
		}
		if err := v.state(p, base); err != nil {
			return err
		}
		// A review decision on a record out of matching writes no state.
		if !p.skip && !p.duplicate && !p.banOnly {
			cur[p.ref] = p.next
		}
	}
	return nil
}

func (v *view) state(p *pending, base stored) error {
	ev := p.ev
	mod := ev.ModifiedAt.UnixMicro()
	if ev.ModifiedAt.IsZero() {
		mod = 0
	}
	newer := !base.exists() || mod > base.modified
	same := base.exists() && mod == base.modified
	if ev.Object == record.Account {
		v.accountState(p, base, mod, newer, same)
		return nil
	}
	var rec record.Record
	switch ev.Op {
	case record.OpUpsert:
		if !newer && !same {
			p.skip = true
			return nil
		}
		rec = ev.Record
	case record.OpPatch:
		if base.exists() && !base.live() {
			// Out of matching (deleted or converted): only a full upsert
			// brings a record back.
			p.skip = true
			return nil
		}
		if !newer && !same {
			p.skip = true
			return nil
		}
		rec = ev.Record
		if base.exists() {
			old, err := decodeRecord(v.run.tenant, ev.Ref(), &base)
			if err != nil {
				return err
			}
			merged := make(record.Fields, len(old.Fields)+len(ev.Fields))
			for k, x := range old.Fields {
				merged[k] = x
			}
			for k, x := range ev.Fields {
				if x == nil {
					delete(merged, k)
				} else {
					merged[k] = x
				}
			}
			rec.Fields = merged
			rec.CreatedAt = old.CreatedAt
			if rec.RelatedCount == 0 {
				rec.RelatedCount = old.RelatedCount
			}
		}
		p.prep = nil
	case record.OpDelete:
		// A newer delete of a tombstone still advances its timestamp, so an
		// upsert older than the delete cannot bring the record back.
		if base.exists() && !base.live() && !newer || (mod != 0 && !newer && !same) {
			p.skip = true
			return nil
		}
		p.next = stored{seq: base.seq + 1, modified: max(mod, base.modified), created: base.created}
		p.next.raw = encodeStored(p.next.seq, p.next.modified, p.next.created, nil, "")
		return nil
	case record.OpHold:
		// Out of matching like a delete, but keeping the last known
		// modification time: the upsert that ends the hold is a re-read
		// whose modified time can precede the change that caused it.
		if base.exists() && !base.live() || (mod != 0 && !newer && !same) {
			p.skip = true
			return nil
		}
		p.next = stored{seq: base.seq + 1, modified: base.modified, created: base.created}
		p.next.raw = encodeStored(p.next.seq, p.next.modified, p.next.created, nil, "")
		return nil
	case record.OpNotDuplicate, record.OpClearNotDuplicate:
		sign := "+"
		if ev.Op == record.OpClearNotDuplicate {
			sign = "-"
		}
		p.ban = sign + refKey(*ev.Other)
		if !base.live() {
			p.banOnly = true
			return nil
		}
		// Refresh the record: same content, one more write, so its links
		// are decided again with the ban in place (or lifted).
		old, err := decodeRecord(v.run.tenant, ev.Ref(), &base)
		if err != nil {
			return err
		}
		rec = old
		mod = base.modified
		p.prep = nil
	}
	if rec.Fields == nil {
		rec.Fields = record.Fields{}
	}
	created := rec.CreatedAt.UnixMicro()
	if rec.CreatedAt.IsZero() {
		created = base.created
	}
	if p.prep == nil {
		p.blockHex = v.blocksOf(p, &rec)
	}
	if !p.prep.Active {
		p.next = stored{seq: base.seq + 1, modified: mod, created: created}
		p.next.raw = encodeStored(p.next.seq, mod, created, nil, "")
		if same && !base.live() {
			p.duplicate = true
		}
		return nil
	}
	var body string
	var err error
	if ev.Op == record.OpUpsert && p.pre != nil {
		body, err = p.pre.blob, p.pre.err
	} else {
		body, err = encodeBlob(&rec)
	}
	if err != nil {
		return &RefusedError{Index: p.idx, Err: fmt.Errorf("%w: %w", ErrInvalidEvent, err)}
	}
	if same && body == base.blob && ev.Op != record.OpNotDuplicate && ev.Op != record.OpClearNotDuplicate {
		p.duplicate = true
		return nil
	}
	rec.CreatedAt = timeOf(created)
	rec.ModifiedAt = timeOf(mod)
	p.next = stored{seq: base.seq + 1, modified: mod, created: created, blocks: p.blockHex, blob: body}
	p.next.raw = encodeStored(p.next.seq, mod, created, p.blockHex, body)
	p.nextRec = &rec
	return nil
}

// accountState computes an account event's index entry. Accounts keep no
// content, only the key of their normalised name.
func (v *view) accountState(p *pending, base stored, mod int64, newer, same bool) {
	ev := p.ev
	// Accounts only index their name: a hold keeps the last known one.
	if ev.Op == record.OpNotDuplicate || ev.Op == record.OpClearNotDuplicate || ev.Op == record.OpHold || (!newer && !same) {
		p.skip = true
		return
	}
	var keys []string
	switch ev.Op {
	case record.OpDelete:
		if len(base.blocks) == 0 {
			p.skip = true
			return
		}
	case record.OpPatch:
		keys = base.blocks
		if _, ok := ev.Fields[v.run.rules.Config().AccountNameField]; !ok {
			break
		}
		fallthrough
	default:
		keys = nil
		if k := v.run.rules.AccountKey(ev.Fields.Str(v.run.rules.Config().AccountNameField)); k != "" {
			keys = []string{accountHex(k)}
		}
	}
	if same && slices.Equal(keys, base.blocks) {
		p.skip = true
		return
	}
	created := ev.CreatedAt.UnixMicro()
	if ev.CreatedAt.IsZero() {
		created = base.created
	}
	p.next = stored{seq: base.seq + 1, modified: max(mod, base.modified), created: created, blocks: keys}
	p.next.raw = encodeStored(p.next.seq, p.next.modified, created, keys, "")
}

// decide computes, in batch order, each event's record state, neighbours,
// blocks, edges and clusters, laying each decision over the view and
// recording its writes, and each event's changes as of its decision.
func (v *view) decide(s *Store) error {
	maxBlock := v.run.rules.MaxBlockSize()
	for _, p := range v.run.events {
		switch {
		case p.skip:
			continue
		case p.duplicate:
			// Reported as the cluster is at the replay's place in the
			// batch, not after it.
			if err := v.current(s, p); err != nil {
				return err
			}
			continue
		case p.ev.Object == record.Account:
			v.writeAccount(p)
			continue
		}
		if p.ban != "" {
			v.applyBan(p)
		}
		if p.banOnly {
			continue
		}
		old := v.recs[p.ref]
		if p.next.live() {
			if err := v.neighbours(s, p); err != nil {
				return err
			}
		}
		changed, err := v.moveBlocks(s, p, old.blocks, p.next.blocks, maxBlock)
		if err != nil {
			return err
		}
		for _, b := range changed {
			if val := v.blocks[b].value(); val == "" {
				v.del(hB, b)
			} else {
				v.put(hB, b, val)
			}
		}
		v.recs[p.ref] = p.next
		v.put(hR, p.ref, p.next.raw)
		v.cacheWritten(s, p)
		if err := v.clusters(s, p, old); err != nil {
			return err
		}
	}
	return nil
}

// writeAccount indexes an account by its normalised name: the old key goes
// when it still names this account, the new one points at it.
func (v *view) writeAccount(p *pending) {
	old := v.recs[p.ref]
	key := ""
	if len(p.next.blocks) > 0 {
		key = p.next.blocks[0]
	}
	for _, k := range old.blocks {
		if k != key && v.acct[k] == p.ev.ID {
			v.acct[k] = ""
			v.del(hAcct, k)
		}
	}
	if key != "" {
		v.acct[key] = p.ev.ID
		v.put(hAcct, key, p.ev.ID)
	}
	v.recs[p.ref] = p.next
	v.put(hR, p.ref, p.next.raw)
}

// neighbours decides the records p's new state links to: every live
// candidate of its blocks (those under the size limit) that a rule matches
// and no review ban forbids.
func (v *view) neighbours(s *Store, p *pending) error {
	banned := strings.Fields(v.bans[p.ref])
	if v.seen == nil {
		v.seen = map[string]bool{}
	}
	seen := v.seen
	clear(seen)
	seen[p.ref] = true
	for _, b := range p.next.blocks {
		bv := v.block(b)
		if bv == nil {
			return fmt.Errorf("matcher: block of %s was not read", p.ev.Ref())
		}
		if bv.poisoned {
			continue
		}
		for _, c := range bv.members {
			if seen[c] {
				continue
			}
			seen[c] = true
			if slices.Contains(banned, c) {
				continue
			}
			st := v.recs[c]
			if !st.live() {
				continue
			}
			e, err := s.entry(v.run, c, st.raw)
			if err != nil {
				return err
			}
			if e == nil {
				continue
			}
			if _, ok := v.run.rules.Match(p.prep, e.prep); ok {
				p.neighbors = append(p.neighbors, c)
			}
		}
	}
	slices.Sort(p.neighbors)
	return nil
}

// moveBlocks takes p's record out of the blocks it leaves and into the
// ones it joins, and returns those blocks: the batch writes their new values.
func (v *view) moveBlocks(s *Store, p *pending, old, next []string, maxBlock int) ([]string, error) {
	var changed []string
	for _, b := range old {
		if slices.Contains(next, b) {
			continue
		}
		bv := v.block(b)
		if bv == nil {
			return nil, fmt.Errorf("matcher: block %s of %s was not read", b, p.ref)
		}
		changed = append(changed, b)
		bv.count--
		bv.members = slices.DeleteFunc(bv.members, func(m string) bool { return m == p.ref })
	}
	for _, b := range next {
		if slices.Contains(old, b) {
			continue
		}
		bv := v.block(b)
		if bv == nil {
			return nil, fmt.Errorf("matcher: block %s of %s was not read", b, p.ref)
		}
		changed = append(changed, b)
		bv.count++
		if bv.poisoned {
			continue
		}
		if bv.count > maxBlock {
			bv.poisoned, bv.members = true, nil
			s.warnOversize(p.rules[b], b)
			continue
		}
		bv.members = append(bv.members, p.ref)
	}
	return changed, nil
}

// value is the block's stored form: its members, "!<count>" once it passed
// the size limit, "" (deleted) when empty.
func (b *blockView) value() string {
	switch {
	case b.count <= 0:
		return ""
	case b.poisoned:
		return "!" + strconv.Itoa(b.count)
	}
	return strings.Join(b.members, " ")
}

// applyBan stores a review decision on both refs' ban lists.
func (v *view) applyBan(p *pending) {
	other := p.ban[1:]
	add := p.ban[0] == '+'
	for _, pair := range [2][2]string{{p.ref, other}, {other, p.ref}} {
		list := strings.Fields(v.bans[pair[0]])
		list = slices.DeleteFunc(list, func(m string) bool { return m == pair[1] })
		if add {
			list = append(list, pair[1])
		}
		v.bans[pair[0]] = strings.Join(list, " ")
		if len(list) == 0 {
			v.del(hX, pair[0])
		} else {
			v.put(hX, pair[0], v.bans[pair[0]])
		}
	}
}

// cacheWritten caches the prepared form of a value the batch just wrote,
// in the form decoding the value gives: a change reports its members
// the same whether they come from the cache or from Redis.
func (v *view) cacheWritten(s *Store, p *pending) {
	if p.nextRec == nil || p.prep == nil || !p.next.live() {
		return
	}
	fields, ok := asDecoded(p.nextRec.Fields)
	if !ok {
		return
	}
	r := *p.nextRec
	r.Tenant, r.Fields = v.run.tenant, fields
	s.res.prep.put(v.run.tenant+"\x00"+p.ref, &cacheEntry{raw: p.next.raw, rec: &r, prep: p.prep})
}
