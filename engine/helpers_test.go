package engine

import (
	"fmt"
	"time"

	"github.com/leadconv/leadconv/record"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at returns t0 plus h hours.
func at(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

// rb builds a record: object, id, created and modified hour offsets.
type rb struct {
	obj      record.Object
	id       string
	created  int
	modified int
	related  int
	fields   record.Fields
}

func (b rb) rec() record.Record {
	return record.Record{
		Tenant: "acme", Object: b.obj, ID: b.id, CreatedAt: at(b.created), ModifiedAt: at(b.modified),
		RelatedCount: b.related, Fields: b.fields,
	}
}

func lead(id string, created, modified int, f record.Fields) record.Record {
	return rb{obj: record.Lead, id: id, created: created, modified: modified, fields: f}.rec()
}

func contact(id string, created, modified int, f record.Fields) record.Record {
	return rb{obj: record.Contact, id: id, created: created, modified: modified, fields: f}.rec()
}

func cluster(recs ...record.Record) Cluster {
	return Cluster{Tenant: "acme", ID: "c1", Version: 3, Records: recs}
}

// cfgWith returns a default config changed by fn; a fresh pointer each
// time, as Plan caches per *Config. Its fields carry over (unmapped_fields:
// carry_over), so tests of strategies and options can use any field name;
// TestFieldModels covers the CRM models' drop.
func cfgWith(fn func(*Config)) *Config {
	c := DefaultConfig()
	c.Conversion.UnmappedFields = UnmappedCarryOver
	if fn != nil {
		fn(&c)
	}
	return &c
}

// benchCluster builds n records: leads and, from the fourth, every third a
// contact; ten fields each, some blank.
func benchCluster(n int) Cluster {
	recs := make([]record.Record, n)
	for i := range recs {
		f := record.Fields{
			"FirstName": "Ada", "LastName": "Lovelace", "Email": fmt.Sprintf("ada%d@example.com", i%3),
			"Phone": "+44 20 7946 0000", "Company": "Analytical Engines", "Title": "Engineer",
			"Industry": "Computing", "LeadSource": "Web", "AnnualRevenue": float64(1000 * i),
			"Description": "notes",
		}
		if i%4 == 1 {
			f["Phone"] = nil
			delete(f, "Title")
		}
		obj := record.Lead
		if i >= 3 && i%3 == 0 {
			obj = record.Contact
		}
		recs[i] = rb{obj: obj, id: fmt.Sprintf("r%03d", i), created: i, modified: 100 + (i*7)%13, related: i % 4, fields: f}.rec()
	}
	c := cluster(recs...)
	c.Accounts = map[string]string{"Analytical Engines": "001A"}
	return c
}
