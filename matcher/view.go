package matcher

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/record"
)

// view is one tenant's state as a batch attempt sees it: what the reads
// returned (first seen), then the batch's own writes laid over it, so each
// event is decided against the state the events before it leave behind.
type view struct {
	run     *tenantRun
	batch   string
	recs    map[string]stored
	blocks  map[string]*blockView
	stripes map[int]int64
	bans    map[string]string
	rules   map[string]string // block hex -> rule name, for warnings
	// Cluster state: membership, edges, clusters (nil: absent) and their
	// versions. A key is known once present.
	cm  map[string]string
	adj map[string]string
	cl  map[string]*clusterVal
	cv  map[string]int64
	// interfered is set when a decision finds the reads lacking something
	// they should hold (a member without a record, say): another writer got
	// in between, and the attempt must start over.
	interfered bool
	// assumed lists cluster ids a decision took as never used without
	// having read them (ids for split-off parts); the apply checks that, and
	// if the attempt is redone, it reads them.
	assumed []string
	// seen is neighbours' scratch set, reused from event to event.
	seen map[string]bool
	// accountLookups fill the changes' Accounts in the apply round.
	accountLookups []accountLookup
}

// clusterVal is a stored cluster: its oldest member's creation time and its
// sorted members.
type clusterVal struct {
	oldest  int64
	members []string
}

// parseCluster reads a cl value, "oldest_created\tmember refs"; nil for
// none.
func parseCluster(raw string) *clusterVal {
	if raw == "" {
		return nil
	}
	o, members, _ := strings.Cut(raw, "\t")
	c := &clusterVal{members: strings.Fields(members)}
	c.oldest, _ = strconv.ParseInt(o, 10, 64)
	return c
}

// String is the cl value of c.
func (c *clusterVal) String() string {
	return strconv.FormatInt(c.oldest, 10) + "\t" + strings.Join(c.members, " ")
}

type blockView struct {
	raw      string
	members  []string
	count    int
	poisoned bool
}

func newView(run *tenantRun) *view {
	return &view{
		run:     run,
		recs:    map[string]stored{},
		blocks:  map[string]*blockView{},
		stripes: map[int]int64{},
		bans:    map[string]string{},
		rules:   map[string]string{},
		cm:      map[string]string{},
		adj:     map[string]string{},
		cl:      map[string]*clusterVal{},
		cv:      map[string]int64{},
	}
}

func parseBlock(raw string) *blockView {
	b := &blockView{raw: raw}
	if strings.HasPrefix(raw, "!") {
		b.poisoned = true
		b.count, _ = strconv.Atoi(raw[1:])
		return b
	}
	b.members = strings.Fields(raw)
	b.count = len(b.members)
	return b
}

// seeBlock records a block's value and its stripe's version as read.
func (v *view) seeBlock(b, raw, stripeVersion string) {
	if _, ok := v.blocks[b]; !ok {
		v.blocks[b] = parseBlock(raw)
	}
	v.seeStripe(stripeOf(b), stripeVersion)
}

func (v *view) seeStripe(st int, version string) {
	if _, ok := v.stripes[st]; !ok {
		v.stripes[st], _ = strconv.ParseInt(version, 10, 64)
	}
}

// seeClusters records what clusters.lua returned for refs: their cluster
// ids and edges, and the clusters with their versions.
func (v *view) seeClusters(refs []string, cmd *redis.Cmd) error {
	res, err := cmd.Slice()
	if err != nil {
		return err
	}
	if len(res) != 5 {
		return fmt.Errorf("clusters.lua returned %d values", len(res))
	}
	cms, adj, ids, cvs, cls := anys(res[0]), anys(res[1]), anys(res[2]), anys(res[3]), anys(res[4])
	if len(cms) != len(refs) || len(adj) != len(refs) || len(cvs) != len(ids) || len(cls) != len(ids) {
		return fmt.Errorf("clusters.lua returned lists of unexpected lengths")
	}
	for i, ref := range refs {
		if _, ok := v.cm[ref]; !ok {
			v.cm[ref], _ = cms[i].(string)
		}
		v.seeAdj(ref, adj[i])
	}
	for i, x := range ids {
		id, _ := x.(string)
		if _, ok := v.cl[id]; ok {
			continue
		}
		raw, _ := cls[i].(string)
		ver, _ := cvs[i].(string)
		v.cl[id] = parseCluster(raw)
		v.cv[id], _ = strconv.ParseInt(ver, 10, 64)
	}
	return nil
}

func anys(x any) []any {
	list, _ := x.([]any)
	return list
}

// seeAdj records a record's edges as read.
func (v *view) seeAdj(ref string, raw any) {
	if _, ok := v.adj[ref]; !ok {
		v.adj[ref], _ = raw.(string)
	}
}

func (v *view) seeRecord(ref, raw string) {
	if _, ok := v.recs[ref]; ok {
		return
	}
	st, err := parseStored(raw)
	if err != nil {
		// A value this code did not write: treat it as absent.
		st = stored{raw: raw}
	}
	v.recs[ref] = st
}

// blocksOf prepares rec and returns its sorted, de-duplicated block keys.
func (v *view) blocksOf(p *pending, rec *record.Record) []string {
	p.prep = v.run.rules.Prepare(rec)
	if !p.prep.Active || rec.Object == record.Account {
		return nil
	}
	keys, rules := blockKeys(p.prep)
	maps.Copy(v.rules, rules)
	return keys
}

// prepared takes an upsert's blocks from its eventPrep.
func (v *view) prepared(p *pending) []string {
	p.prep = p.pre.prep
	maps.Copy(v.rules, p.pre.rules)
	return p.pre.keys
}

// blockKeys returns the sorted, de-duplicated block keys of prep, and the
// rule each came from (for warnings).
func blockKeys(prep *Prepared) ([]string, map[string]string) {
	keys := make([]string, 0, len(prep.Blocks))
	rules := make(map[string]string, len(prep.Blocks))
	for _, b := range prep.Blocks {
		k, _ := blockKey(b)
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
	p.expSeq = base.seqArg()
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
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
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

// decide computes, in batch order, each event's neighbours, blocks and
// clusters, and what its apply must check and write, laying each decision
// over the view, and hands each decided event to emit. It stops at the
// first event whose decision lacks data.
func (v *view) decide(s *Store, emit func(*view, *pending)) error {
	v.batch = s.nextBatch()
	maxBlock := v.run.rules.MaxBlockSize()
	var checkBuf []check
	var writeBuf []write
	for _, p := range v.run.events {
		if p.skip || p.duplicate {
			emit(v, p)
			continue
		}
		if p.ev.Object == record.Account {
			v.recs[p.ref] = p.next
			emit(v, p)
			continue
		}
		if p.ban != "" {
			v.applyBan(p)
		}
		// Room for a typical new lead, which writes about a dozen fields,
		// from one allocation for the whole batch.
		if len(checkBuf) < 8 {
			checkBuf, writeBuf = make([]check, 8*len(v.run.events)), make([]write, 16*len(v.run.events))
		}
		p.checks, p.writes = checkBuf[:0:8], writeBuf[:0:16]
		checkBuf, writeBuf = checkBuf[8:], writeBuf[16:]
		// The record stripe stands for the record itself: every write of it
		// bumps that stripe.
		rs := stripeOfRef(p.ref)
		if p.banOnly {
			v.useStripe(p, rs)
			emit(v, p)
			continue
		}
		old := v.recs[p.ref]
		if p.next.live() {
			if err := v.neighbours(s, p); err != nil {
				return err
			}
		}
		// The apply must find the stripe of every block the record is in or
		// joins as read (but for this batch's own earlier writes), and bumps
		// them: the block contents it writes were computed from those reads.
		stripes := []int{rs}
		for _, b := range p.next.blocks {
			stripes = append(stripes, stripeOf(b))
		}
		for _, b := range old.blocks {
			stripes = append(stripes, stripeOf(b))
		}
		slices.Sort(stripes)
		for _, st := range slices.Compact(stripes) {
			v.useStripe(p, st)
			v.stripes[st]++
			p.put(hSV, strconv.Itoa(st), strconv.FormatInt(v.stripes[st], 10))
		}
		changed, err := v.moveBlocks(s, p, old.blocks, p.next.blocks, maxBlock)
		if err != nil {
			return err
		}
		for _, b := range changed {
			if val := v.blocks[b].value(); val == "" {
				p.del(hB, b)
			} else {
				p.put(hB, b, val)
			}
		}
		v.recs[p.ref] = p.next
		p.put(hR, p.ref, p.next.raw)
		v.cacheWritten(s, p)
		if err := v.clusters(s, p, old); err != nil {
			return err
		}
		if v.interfered {
			return nil
		}
		emit(v, p)
	}
	return nil
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
		bv := v.blocks[b]
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

// moveBlocks mirrors apply.lua's block membership update in the view.
// moveBlocks takes p's record out of the blocks it leaves and into the
// ones it joins, and returns those blocks: the apply writes their new values.
func (v *view) moveBlocks(s *Store, p *pending, old, next []string, maxBlock int) ([]string, error) {
	var changed []string
	for _, b := range old {
		if slices.Contains(next, b) {
			continue
		}
		bv := v.blocks[b]
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
		bv := v.blocks[b]
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
			s.warnOversize(v.rules[b], b)
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
	}
}

// cacheWritten caches the prepared form of a value the batch just wrote.
func (v *view) cacheWritten(s *Store, p *pending) {
	if p.nextRec == nil || p.prep == nil || !p.next.live() {
		return
	}
	r := *p.nextRec
	r.Tenant = v.run.tenant
	s.cache.put(v.run.tenant+"\x00"+p.ref, &cacheEntry{raw: p.next.raw, rec: &r, prep: p.prep})
}
